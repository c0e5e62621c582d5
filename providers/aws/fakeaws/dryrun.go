package fakeaws

import (
	"net/http"
	"net/url"
	"strings"
)

// dryRun answers a request with DryRun=true as EC2 does: the parameters
// are checked against the inventory, nothing changes, and a request that
// would have succeeded fails with DryRunOperation (HTTP 412). Missing
// permissions are injected with Fail(action, "UnauthorizedOperation", ...),
// which is served before this.
func (s *Server) dryRun(action string, form url.Values) *apiError {
	var err *apiError
	switch action {
	case "CreateLaunchTemplate":
		if _, ok := s.templates[form.Get("LaunchTemplateName")]; ok {
			return notFound("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
		}
		err = s.checkLaunch(form.Get("LaunchTemplateData.ImageId"), "", "",
			indexed(form, "LaunchTemplateData.SecurityGroupId"), form.Get("LaunchTemplateData.IamInstanceProfile.Name"))
	case "RunInstances":
		subnet, groups := form.Get("SubnetId"), indexed(form, "SecurityGroupId")
		if ni := form.Get("NetworkInterface.1.SubnetId"); ni != "" {
			subnet, groups = ni, indexed(form, "NetworkInterface.1.SecurityGroupId")
		}
		if form.Get("MinCount") == "" || form.Get("MaxCount") == "" {
			return &apiError{code: "MissingParameter", message: "The request must contain the parameter MinCount and MaxCount", status: http.StatusBadRequest}
		}
		err = s.checkLaunch(form.Get("ImageId"), form.Get("InstanceType"), subnet, groups, form.Get("IamInstanceProfile.Name"))
	default:
		return &apiError{code: "InvalidParameterValue", message: "fakeaws does not dry-run " + action, status: http.StatusBadRequest}
	}
	if err != nil {
		return err
	}
	return &apiError{code: "DryRunOperation", message: "Request would have succeeded, but DryRun flag is set.", status: http.StatusPreconditionFailed}
}

// checkLaunch validates launch parameters against the inventory; empty
// instanceType or subnet are not checked (a launch template names neither).
func (s *Server) checkLaunch(imageID, instanceType, subnet string, groups []string, profile string) *apiError {
	invalid := func(code, msg string) *apiError {
		return &apiError{code: code, message: msg, status: http.StatusBadRequest}
	}
	if imageID == "" {
		return invalid("MissingParameter", "The request must contain the parameter ImageId")
	}
	if !s.hasImage(imageID) {
		return invalid("InvalidAMIID.NotFound", "The image id '["+imageID+"]' does not exist")
	}
	if instanceType != "" && !s.hasType(instanceType) {
		return invalid("InvalidParameterValue", "Invalid value '"+instanceType+"' for InstanceType.")
	}
	var vpc string
	if subnet != "" {
		found := false
		for _, sn := range s.subnets {
			if sn.ID == subnet {
				found, vpc = true, sn.VPC
			}
		}
		if !found {
			return invalid("InvalidSubnetID.NotFound", "The subnet ID '"+subnet+"' does not exist")
		}
	}
	for _, g := range groups {
		found := false
		for _, sg := range s.sgs {
			if sg.ID == g && (vpc == "" || sg.VPC == "" || sg.VPC == vpc) {
				found = true
			}
		}
		if !found {
			return invalid("InvalidGroup.NotFound", "The security group '"+g+"' does not exist in the subnet's VPC")
		}
	}
	if profile != "" {
		if _, ok := s.profiles[strings.TrimPrefix(profile, "/")]; !ok {
			return invalid("InvalidParameterValue", "Value ("+profile+") for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")
		}
	}
	return nil
}

func (s *Server) hasImage(id string) bool {
	for _, im := range s.images {
		if im.ID == id {
			return true
		}
	}
	return false
}

func (s *Server) hasType(name string) bool {
	for _, t := range s.types {
		if t.Name == name {
			return true
		}
	}
	return false
}
