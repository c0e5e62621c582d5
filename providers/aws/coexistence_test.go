package aws_test

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Karpenter for AWS v1.15.0 (github.com/aws/karpenter-provider-aws) finds
// the EC2 and IAM resources it treats as its own with these queries, all
// by tag or path, none by name:
//
//   - instances (pkg/providers/instance/instance.go, List): tag-key
//     karpenter.sh/nodepool AND tag-key karpenter.k8s.aws/ec2nodeclass AND
//     tag:eks:eks-cluster-name=<cluster>. Its NodeClaim garbage collector
//     terminates every such instance that none of its NodeClaims holds.
//   - launch templates (pkg/providers/launchtemplate/launchtemplate.go,
//     hydrateCache, run at every start of its leader): tag:eks:eks-cluster-name=<cluster>
//     alone. Each template found enters its one-minute cache, and a
//     template evicted from that cache is deleted.
//   - launch templates of a deleted EC2NodeClass (DeleteAll): the same tag
//     and tag:karpenter.k8s.aws/ec2nodeclass=<name>.
//   - instance profiles (pkg/controllers/nodeclass/garbagecollection):
//     path prefix /karpenter/<region>/<cluster>/, deleted when no
//     EC2NodeClass or NodeClaim uses them.
//
// Its interruption handler matches SQS events to NodeClaims by the
// instance ID in status.providerID, whatever the instance's tags; that
// cannot be steered by tags (charts/karpenter-gpu/README.md says what it
// does to karpenter-gpu's NodeClaims).
var (
	karpenterAWSInstanceFilters = []ec2types.Filter{
		{Name: awssdk.String("tag-key"), Values: []string{"karpenter.sh/nodepool"}},
		{Name: awssdk.String("tag-key"), Values: []string{"karpenter.k8s.aws/ec2nodeclass"}},
		{Name: awssdk.String("tag:eks:eks-cluster-name"), Values: []string{cluster}},
		{Name: awssdk.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
	}
	karpenterAWSTemplateFilters = []ec2types.Filter{{Name: awssdk.String("tag:eks:eks-cluster-name"), Values: []string{cluster}}}
	karpenterAWSProfilePath     = "/karpenter/us-east-1/" + cluster + "/"
)

// foreignTagKey is a tag key karpenter-gpu must never put on anything it
// creates: Karpenter for AWS's own domain and the EKS cluster tag its
// discovery queries all require.
func foreignTagKey(k string) bool {
	return strings.HasPrefix(k, "karpenter.k8s.aws/") || k == "eks:eks-cluster-name"
}

// tagKeyField matches the form fields of tag keys in the requests
// karpenter-gpu sends: TagSpecification.N.Tag.M.Key (instances, volumes,
// launch templates), LaunchTemplateData.TagSpecification.N.Tag.M.Key
// (network interfaces), Tag.N.Key (CreateTags), Tags.member.N.Key (IAM).
var tagKeyField = regexp.MustCompile(`(^|\.)(Tag|Tags\.member)\.\d+\.Key$`)

func requestTagKeys(form url.Values) []string {
	var keys []string
	for field, vs := range form {
		if tagKeyField.MatchString(field) {
			keys = append(keys, vs...)
		}
	}
	return keys
}

// TestNothingLooksLikeKarpenterAWSs launches instances on every path
// karpenter-gpu has (on-demand, spot, an ODCR, a capacity block, a batched
// CreateFleet tagged per NodeClaim afterwards, a gang) and runs the dry-run
// validation, then puts Karpenter for AWS's discovery queries to EC2 and
// IAM through the SDK: they find only the resources a Karpenter-AWS-style
// launch created beside them, none of karpenter-gpu's; karpenter-gpu's own
// listing and orphan collection leave that instance alone. No request
// karpenter-gpu sent carries a karpenter.k8s.aws/ or eks:eks-cluster-name
// tag (volumes and network interfaces included).
func TestNothingLooksLikeKarpenterAWSs(t *testing.T) {
	e := newEnv(t, inventory(), func(o *awsbackend.Options, _ *awsbackend.RetryOptions) {
		o.BatchIdle, o.BatchMax = 500*time.Millisecond, 5*time.Second
	})
	nc := e.resolved(nodeClass())
	onDemand := req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)
	for _, c := range []*karpv1.NodeClaim{
		claim("od", 1, onDemand),
		claim("spot", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeSpot)),
		claim("odcr", 1),
		claim("block", 8),
	} {
		e.launch(t, c)
	}
	// Two identical claims at once: one CreateFleet, then CreateTags with
	// each instance's NodeClaim tags.
	same := []karpv1.NodeSelectorRequirementWithMinValues{onDemand,
		req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "g4dn.xlarge"), req(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, "us-east-1b")}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.cp.Create(e.ctx, claim(fmt.Sprintf("batched-%d", i), 1, same...)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("batched Create: %v", err)
		}
	}
	if n := len(e.srv.Requests("CreateTags")); n == 0 {
		t.Fatal("the two identical claims were not batched (no CreateTags): the per-claim tagging path was not exercised")
	}
	p5 := gpucp.LaunchOption{InstanceType: "p5.48xlarge", Zone: "us-east-1c", CapacityType: karpv1.CapacityTypeOnDemand, Price: 55.04}
	gang, err := e.backend.LaunchGang(e.ctx, awsbackend.GangRequest{NodeClass: nc, NodeClaim: claim("gang", 8), Options: []gpucp.LaunchOption{p5}, Count: 2, ClientToken: "gang-coexistence",
		Tags: map[string]string{gpucp.TagNodeClaim: "gang", gpucp.TagNodeClass: nc.Name, gpucp.TagNodePool: "gpu-pool"}})
	if err != nil || gang == nil || len(gang.Instances) != 2 {
		t.Fatalf("LaunchGang = %+v, %v; want 2 instances", gang, err)
	}
	if err := e.backend.Validate(e.ctx, nc); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	const ours = 4 + 2 + 2

	// Every tagging request karpenter-gpu sent.
	var sent int
	for _, r := range e.srv.Requests("") {
		keys := requestTagKeys(r.Form)
		sent += len(keys)
		if bad := lo.Filter(keys, func(k string, _ int) bool { return foreignTagKey(k) }); len(bad) > 0 {
			t.Errorf("%s %s request tags with Karpenter for AWS's keys %v", r.Service, r.Action, bad)
		}
	}
	if sent == 0 {
		t.Fatal("no tag keys found in karpenter-gpu's requests: the form field pattern is wrong")
	}

	// A Karpenter-AWS-style launch beside them, through the same endpoint:
	// its launch template, instance and instance profile, tagged and
	// placed as Karpenter for AWS places them.
	clients := awstest.Clients(t, e.srv)
	awsTags := func(extra map[string]string) []ec2types.Tag {
		m := lo.Assign(map[string]string{"eks:eks-cluster-name": cluster, "karpenter.k8s.aws/ec2nodeclass": "default", "kubernetes.io/cluster/" + cluster: "owned"}, extra)
		keys := lo.Keys(m)
		sort.Strings(keys)
		return lo.Map(keys, func(k string, _ int) ec2types.Tag {
			return ec2types.Tag{Key: awssdk.String(k), Value: awssdk.String(m[k])}
		})
	}
	const awsTemplate = "karpenter.k8s.aws/0123456789"
	if _, err := clients.EC2.CreateLaunchTemplate(e.ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: awssdk.String(awsTemplate),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: awssdk.String("ami-stdx86")},
		TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: awsTags(nil)}},
	}); err != nil {
		t.Fatal(err)
	}
	instTags := awsTags(map[string]string{"karpenter.sh/nodepool": "default", "karpenter.sh/nodeclaim": "default-abcde"})
	fleet, err := clients.EC2.CreateFleet(e.ctx, &ec2.CreateFleetInput{
		Type: ec2types.FleetTypeInstant,
		LaunchTemplateConfigs: []ec2types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateName: awssdk.String(awsTemplate), Version: awssdk.String("$Latest")},
			Overrides:                   []ec2types.FleetLaunchTemplateOverridesRequest{{InstanceType: ec2types.InstanceTypeM5Large, SubnetId: awssdk.String("subnet-b")}},
		}},
		TargetCapacitySpecification: &ec2types.TargetCapacitySpecificationRequest{TotalTargetCapacity: awssdk.Int32(1), DefaultTargetCapacityType: ec2types.DefaultTargetCapacityTypeOnDemand},
		TagSpecifications:           []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: instTags}, {ResourceType: ec2types.ResourceTypeVolume, Tags: instTags}},
	})
	if err != nil || len(fleet.Instances) != 1 || len(fleet.Instances[0].InstanceIds) != 1 {
		t.Fatalf("Karpenter-AWS-style CreateFleet = %+v, %v", fleet, err)
	}
	awsInstance := fleet.Instances[0].InstanceIds[0]
	const awsProfile = cluster + "_1234567890"
	if _, err := clients.IAM.CreateInstanceProfile(e.ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: awssdk.String(awsProfile), Path: awssdk.String(karpenterAWSProfilePath)}); err != nil {
		t.Fatal(err)
	}

	// Karpenter for AWS's queries find its resources and none of ours.
	var adopted []string
	instances := ec2.NewDescribeInstancesPaginator(clients.EC2, &ec2.DescribeInstancesInput{Filters: karpenterAWSInstanceFilters, MaxResults: awssdk.Int32(1000)})
	if err := awsutil.EachPage(e.ctx, time.Minute, instances, func(page *ec2.DescribeInstancesOutput) {
		for _, r := range page.Reservations {
			adopted = append(adopted, lo.Map(r.Instances, func(i ec2types.Instance, _ int) string { return awssdk.ToString(i.InstanceId) })...)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{awsInstance}, adopted); diff != "" {
		t.Errorf("instances Karpenter for AWS's garbage collector lists (-want +got):\n%s", diff)
	}
	var hydrated []string
	templates := ec2.NewDescribeLaunchTemplatesPaginator(clients.EC2, &ec2.DescribeLaunchTemplatesInput{Filters: karpenterAWSTemplateFilters, MaxResults: awssdk.Int32(200)})
	if err := awsutil.EachPage(e.ctx, time.Minute, templates, func(page *ec2.DescribeLaunchTemplatesOutput) {
		hydrated = append(hydrated, lo.Map(page.LaunchTemplates, func(lt ec2types.LaunchTemplate, _ int) string { return awssdk.ToString(lt.LaunchTemplateName) })...)
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{awsTemplate}, hydrated); diff != "" {
		t.Errorf("launch templates Karpenter for AWS caches at start and then deletes (-want +got):\n%s", diff)
	}
	profiles, err := clients.IAM.ListInstanceProfiles(e.ctx, &iam.ListInstanceProfilesInput{PathPrefix: awssdk.String(karpenterAWSProfilePath)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{awsProfile}, lo.Map(profiles.InstanceProfiles, func(p iamtypes.InstanceProfile, _ int) string { return awssdk.ToString(p.InstanceProfileName) })); diff != "" {
		t.Errorf("instance profiles Karpenter for AWS's garbage collector lists (-want +got):\n%s", diff)
	}

	// The other way round: karpenter-gpu's List (what its orphan collector
	// and core's garbage collection see) leaves Karpenter-AWS's instance
	// out, and the orphan collector, with none of karpenter-gpu's
	// NodeClaims stored here, terminates karpenter-gpu's instances only.
	listed, err := e.backend.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lo.ContainsBy(listed, func(i *gpucp.Instance) bool { return i.ID == awsInstance }) || len(listed) != ours {
		t.Errorf("karpenter-gpu lists %d instances (want %d), Karpenter-AWS's %s among them: %v", len(listed), ours, awsInstance,
			lo.Map(listed, func(i *gpucp.Instance, _ int) string { return i.ID }))
	}
	e.clock.Step(10 * time.Minute)
	collected, err := e.collectOrphans(2 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if lo.Contains(collected, awsInstance) || len(collected) != ours {
		t.Errorf("orphan collection took %v (want karpenter-gpu's %d, never Karpenter-AWS's %s)", collected, ours, awsInstance)
	}

	// karpenter-gpu's own instances, found by its own tag, carry no
	// Karpenter for AWS key and of karpenter.sh/ only the NodePool.
	out, err := clients.EC2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: awssdk.String("tag:" + gpucp.TagCluster), Values: []string{cluster}}}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			n++
			keys := lo.Map(inst.Tags, func(tg ec2types.Tag, _ int) string { return awssdk.ToString(tg.Key) })
			if bad := lo.Filter(keys, func(k string, _ int) bool {
				return foreignTagKey(k) || (strings.HasPrefix(k, "karpenter.sh/") && k != karpv1.NodePoolLabelKey)
			}); len(bad) > 0 {
				t.Errorf("instance %s carries %v", awssdk.ToString(inst.InstanceId), bad)
			}
			if !lo.Contains(keys, gpucp.TagNodeClaim) || !lo.Contains(keys, "kubernetes.io/cluster/"+cluster) {
				t.Errorf("instance %s lacks karpenter-gpu's own tags: %v", awssdk.ToString(inst.InstanceId), keys)
			}
		}
	}
	if n != ours {
		t.Errorf("DescribeInstances by %s found %d instances, want %d", gpucp.TagCluster, n, ours)
	}
}

// The node class controller reports a TagError as ValidationSucceeded=False
// with its reason.
var _ nodeclass.ValidationFailure = &awsbackend.TagError{}

// TestKarpenterAWSTagsInANodeClass: a GPUNodeClass stored with tags
// Karpenter for AWS owns (stored before the CRD refused karpenter.k8s.aws/
// keys and eks:eks-cluster-name) fails validation
// naming the keys, and a launch with it leaves them off the instance.
func TestKarpenterAWSTagsInANodeClass(t *testing.T) {
	e := newEnv(t, inventory())
	nc := e.resolved(nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Spec.Tags = map[string]string{"team": "ml", "karpenter.k8s.aws/ec2nodeclass": "default", "eks:eks-cluster-name": cluster}
	}))
	err := e.backend.Validate(e.ctx, nc)
	var failure interface{ ConditionReason() string }
	if !errors.As(err, &failure) {
		t.Fatalf("Validate = %v, want a validation failure", err)
	}
	for _, want := range []string{"spec.tags", `"eks:eks-cluster-name"`, `"karpenter.k8s.aws/ec2nodeclass"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not name %s", err, want)
		}
	}
	if failure.ConditionReason() != "KarpenterAWSTag" {
		t.Errorf("reason = %q, want KarpenterAWSTag", failure.ConditionReason())
	}
	if len(e.srv.Requests("RunInstances")) != 0 {
		t.Error("the dry runs were sent although the tags already refuse the node class")
	}
	e.launch(t, claim("od", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand)))
	insts := e.srv.Instances()
	if len(insts) != 1 {
		t.Fatalf("%d instances, want 1", len(insts))
	}
	if bad := lo.Filter(lo.Keys(insts[0].Tags), func(k string, _ int) bool { return foreignTagKey(k) }); len(bad) > 0 || insts[0].Tags["team"] != "ml" {
		t.Errorf("instance tags = %v: want team=ml and none of %v", insts[0].Tags, bad)
	}
	for name, lt := range e.srv.LaunchTemplates() {
		if bad := lo.Filter(lo.Keys(lt.Tags), func(k string, _ int) bool { return foreignTagKey(k) }); len(bad) > 0 {
			t.Errorf("launch template %s tags = %v", name, lt.Tags)
		}
		for k, v := range lt.Data {
			if strings.HasSuffix(k, ".Key") && foreignTagKey(v) {
				t.Errorf("launch template %s tags network interfaces with %s", name, v)
			}
		}
	}
}
