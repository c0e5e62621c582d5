package fakeaws

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (s *Server) profileNode(p *InstanceProfile) node {
	var roles []node
	for _, r := range p.Roles {
		roles = append(roles, member(txt("Path", "/"), txt("RoleName", r), txt("RoleId", "AROA"+r),
			txt("Arn", "arn:aws:iam::123456789012:role/"+r), ts("CreateDate", time.Unix(0, 0))))
	}
	path := p.Path
	if path == "" {
		path = "/"
	}
	return el("InstanceProfile", txt("Path", path), txt("InstanceProfileName", p.Name), txt("InstanceProfileId", "AIPA"+p.Name),
		txt("Arn", "arn:aws:iam::123456789012:instance-profile"+path+p.Name), ts("CreateDate", time.Unix(0, 0)), el("Roles", roles...))
}

func (s *Server) iamAction(action string, form url.Values) ([]node, *apiError) {
	noSuch := func(what string) *apiError {
		return &apiError{code: "NoSuchEntity", message: what + " cannot be found", status: http.StatusNotFound}
	}
	name := form.Get("InstanceProfileName")
	switch action {
	case "GetInstanceProfile":
		p, ok := s.profiles[name]
		if !ok {
			return nil, noSuch("Instance Profile " + name)
		}
		return []node{s.profileNode(p)}, nil
	case "CreateInstanceProfile":
		if _, ok := s.profiles[name]; ok {
			return nil, &apiError{code: "EntityAlreadyExists", message: "Instance Profile " + name + " already exists", status: http.StatusConflict}
		}
		p := &InstanceProfile{Name: name, Path: form.Get("Path"), Tags: map[string]string{}}
		for i := 1; ; i++ {
			k, ok := form["Tags.member."+itoa(i)+".Key"]
			if !ok {
				break
			}
			p.Tags[k[0]] = form.Get("Tags.member." + itoa(i) + ".Value")
		}
		s.profiles[name] = p
		return []node{s.profileNode(p)}, nil
	case "ListInstanceProfiles":
		// One page: IsTruncated is always false.
		prefix := form.Get("PathPrefix")
		if prefix == "" {
			prefix = "/"
		}
		names := make([]string, 0, len(s.profiles))
		for n, p := range s.profiles {
			path := p.Path
			if path == "" {
				path = "/"
			}
			if strings.HasPrefix(path, prefix) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		members := make([]node, 0, len(names))
		for _, n := range names {
			m := s.profileNode(s.profiles[n])
			m.name = "member"
			members = append(members, m)
		}
		return []node{el("InstanceProfiles", members...), txt("IsTruncated", "false")}, nil
	case "AddRoleToInstanceProfile":
		p, ok := s.profiles[name]
		if !ok {
			return nil, noSuch("Instance Profile " + name)
		}
		role := form.Get("RoleName")
		if !s.roles[role] {
			return nil, noSuch("Role " + role)
		}
		if len(p.Roles) > 0 {
			return nil, &apiError{code: "LimitExceeded", message: "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1", status: http.StatusConflict}
		}
		p.Roles = []string{role}
		return nil, nil
	case "RemoveRoleFromInstanceProfile":
		p, ok := s.profiles[name]
		if !ok {
			return nil, noSuch("Instance Profile " + name)
		}
		role := form.Get("RoleName")
		var kept []string
		for _, r := range p.Roles {
			if r != role {
				kept = append(kept, r)
			}
		}
		p.Roles = kept
		return nil, nil
	}
	return nil, &apiError{code: "InvalidAction", message: "fakeaws does not implement IAM " + action, status: http.StatusBadRequest}
}

func itoa(i int) string { return strconv.Itoa(i) }
