package nodeclass_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/status"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// The controller's own suite, against Karpenter core's test environment (a
// real kube-apiserver and etcd from bin/k8s), with the fake fleet (a
// backend without cloud-side resources) and the production AWS backend
// (real SDK clients) against the in-process EC2/IAM/SSM endpoint.
var (
	ctx context.Context
	env *test.Environment
)

var (
	_ nodeclass.ValidationFailure = &awsbackend.ValidationError{}
	_ nodeclass.Resolver          = &awsbackend.Backend{}
	_ nodeclass.Validator         = &awsbackend.Backend{}
)

func TestNodeClass(t *testing.T) { controlplane.RunSuite(t, &ctx, "nodeclass") }

var _ = BeforeSuite(func() { env = controlplane.NewEnvironment() })

var _ = AfterSuite(func() { Expect(controlplane.StopEnvironment(env)).To(Succeed()) })

var _ = AfterEach(func() { Expect(env.Client.DeleteAllOf(ctx, &v1alpha1.GPUNodeClass{})).To(Succeed()) })

// inventory holds what controlplane.GPUNodeClass selects: a subnet and a
// security group tagged for "envtest", the node role, one NVIDIA image.
func inventory() fakeaws.Inventory {
	disc := map[string]string{"karpenter.sh/discovery": "envtest"}
	return fakeaws.Inventory{
		Region:         "us-east-1",
		Subnets:        []fakeaws.Subnet{{ID: "subnet-a", Zone: "us-east-1a", ZoneID: "use1-az1", VPC: "vpc-1", FreeIPs: 100, Tags: disc}},
		SecurityGroups: []fakeaws.SecurityGroup{{ID: "sg-nodes", Name: "nodes", VPC: "vpc-1", Tags: disc}},
		Images:         []fakeaws.Image{{ID: "ami-nvx86", Name: "al2023-nvidia-x86_64", Arch: "x86_64", Owner: "amazon", Created: time.Unix(1_700_000_000, 0)}},
		InstanceTypes: []fakeaws.InstanceType{{Name: "g4dn.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "T4",
			GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 16384, ENIs: 3, IPsPerENI: 10}},
		OnDemandPrices: map[string]float64{"g4dn.xlarge": 0.526},
		SSMParameters:  map[string]string{awsenv.SSMNVIDIAx86: "ami-nvx86"},
		Roles:          []string{"KarpenterNodeRole-envtest"},
	}
}

// awsBackend is the production AWS backend against srv.
func awsBackend(srv *fakeaws.Server) *awsbackend.Backend {
	GinkgoHelper()
	clients, err := awsenv.Clients(ctx, srv, awsbackend.RetryOptions{MaxAttempts: 3, MaxBackoff: 5 * time.Millisecond})
	Expect(err).ToNot(HaveOccurred())
	b, err := awsbackend.NewBackend(ctx, awsbackend.Options{Region: "us-east-1", ClusterName: "envtest",
		ClusterEndpoint: "https://api.envtest.example", ClusterCABundle: "Q0E=", KubernetesVersion: "1.33",
		EC2: clients.EC2, SSM: clients.SSM, Pricing: clients.Pricing, IAM: clients.IAM})
	Expect(err).ToNot(HaveOccurred())
	return b
}

// condition returns the stored node class's condition of type t.
func condition(nc *v1alpha1.GPUNodeClass, t string) *status.Condition {
	GinkgoHelper()
	return ExpectExists(ctx, env.Client, nc).StatusConditions().Get(t)
}

func expectCondition(nc *v1alpha1.GPUNodeClass, t string, s metav1.ConditionStatus, reason string) {
	GinkgoHelper()
	c := condition(nc, t)
	Expect(c).ToNot(BeNil(), "condition %s", t)
	Expect(c.Status).To(Equal(s), "condition %s: %+v", t, c)
	if reason != "" {
		Expect(c.Reason).To(Equal(reason), "condition %s: %+v", t, c)
	}
}

var resolutionConditions = []string{v1alpha1.ConditionTypeSubnetsReady, v1alpha1.ConditionTypeSecurityGroupsReady,
	v1alpha1.ConditionTypeAMIsReady, v1alpha1.ConditionTypeInstanceProfileReady}

var _ = Describe("GPUNodeClass status with a backend without cloud-side resources", func() {
	var fleet *fake.Fleet
	var ctrl *nodeclass.Controller
	BeforeEach(func() {
		fleet = fake.NewFleet(fake.Options{})
		ctrl = nodeclass.NewController(nodeclass.Options{KubeClient: env.Client, Backend: fleet})
	})

	It("is Ready once the backend describes offerings, and re-checks every 5 minutes", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		res := ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		Expect(res.RequeueAfter).To(Equal(5 * time.Minute))
		for _, t := range resolutionConditions {
			expectCondition(nc, t, metav1.ConditionTrue, "")
		}
		expectCondition(nc, status.ConditionReady, metav1.ConditionTrue, "")
		Expect(condition(nc, nodeclass.ConditionTypeValidationSucceeded)).To(BeNil())
	})
	It("is not Ready while the backend cannot describe offerings", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		fleet.InjectAPIError("Offerings", errors.New("offerings are down"))
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		expectCondition(nc, v1alpha1.ConditionTypeSubnetsReady, metav1.ConditionFalse, "OfferingsUnavailable")
		expectCondition(nc, status.ConditionReady, metav1.ConditionFalse, "")
		// The next reconcile, with offerings back, makes it Ready.
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		expectCondition(nc, status.ConditionReady, metav1.ConditionTrue, "")
	})
	It("ignores a node class deleted since it was read", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		stale := ExpectExists(ctx, env.Client, nc)
		Expect(env.Client.Delete(ctx, nc)).To(Succeed())
		_, err := ctrl.Reconcile(ctx, stale)
		Expect(err).ToNot(HaveOccurred())
	})
})

var _ = Describe("GPUNodeClass status with the AWS backend", func() {
	var srv *fakeaws.Server
	var ctrl *nodeclass.Controller
	BeforeEach(func() {
		srv = fakeaws.New(inventory())
		DeferCleanup(srv.Close)
		ctrl = nodeclass.NewController(nodeclass.Options{KubeClient: env.Client, Backend: awsBackend(srv)})
	})

	It("resolves subnets, security groups, images and the instance profile, validates, and is Ready", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		stored := ExpectExists(ctx, env.Client, nc)
		Expect(stored.Status.Subnets).To(Equal([]v1alpha1.Subnet{{ID: "subnet-a", Zone: "us-east-1a", ZoneID: "use1-az1"}}))
		Expect(stored.Status.SecurityGroups).To(Equal([]v1alpha1.SecurityGroup{{ID: "sg-nodes", Name: "nodes"}}))
		Expect(stored.Status.AMIs).To(HaveLen(1))
		Expect(stored.Status.AMIs[0].ID).To(Equal("ami-nvx86"))
		Expect(stored.Status.InstanceProfile).To(HavePrefix("envtest_"))
		for _, t := range append(resolutionConditions, nodeclass.ConditionTypeValidationSucceeded, status.ConditionReady) {
			expectCondition(nc, t, metav1.ConditionTrue, "")
		}
		Expect(srv.Requests("RunInstances")).To(HaveLen(1))
	})
	It("reports what it cannot resolve with a reason, and does not validate it", func() {
		nc := controlplane.GPUNodeClass()
		nc.Spec.SubnetSelectorTerms = []v1alpha1.SubnetSelectorTerm{{ID: "subnet-nope"}}
		nc.Spec.Role = "NoSuchRole"
		ExpectApplied(ctx, env.Client, nc)
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		expectCondition(nc, v1alpha1.ConditionTypeSubnetsReady, metav1.ConditionFalse, "SubnetsNotFound")
		expectCondition(nc, v1alpha1.ConditionTypeInstanceProfileReady, metav1.ConditionFalse, "InstanceProfileNotFound")
		expectCondition(nc, v1alpha1.ConditionTypeSecurityGroupsReady, metav1.ConditionTrue, "")
		expectCondition(nc, nodeclass.ConditionTypeValidationSucceeded, metav1.ConditionUnknown, "AwaitingResolution")
		expectCondition(nc, status.ConditionReady, metav1.ConditionFalse, "")
		Expect(srv.Requests("RunInstances")).To(BeEmpty())
	})
	It("keeps the stored status and returns an error for a retry when EC2 cannot be asked", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		before := ExpectExists(ctx, env.Client, nc)
		srv.Fail("DescribeSubnets", "UnauthorizedOperation", "injected", 10)
		Expect(ExpectObjectReconcileFailed(ctx, env.Client, ctrl, nc)).To(HaveOccurred())
		after := ExpectExists(ctx, env.Client, nc)
		Expect(after.Status).To(Equal(before.Status))
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
	})
	It("writes the status only when it changed", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		before := ExpectExists(ctx, env.Client, nc).ResourceVersion
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		Expect(ExpectExists(ctx, env.Client, nc).ResourceVersion).To(Equal(before))
	})
	It("gates Ready on the dry run's verdict, and keeps it while the dry run is inconclusive", func() {
		nc := controlplane.GPUNodeClass()
		ExpectApplied(ctx, env.Client, nc)
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		expectCondition(nc, nodeclass.ConditionTypeValidationSucceeded, metav1.ConditionTrue, "")

		// The controller's role loses ec2:RunInstances (or iam:PassRole).
		srv.Fail("RunInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.", 1)
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		expectCondition(nc, nodeclass.ConditionTypeValidationSucceeded, metav1.ConditionFalse, "UnauthorizedOperation")
		expectCondition(nc, status.ConditionReady, metav1.ConditionFalse, "UnhealthyDependents")

		// Throttled: no verdict; the last one stays, Ready stays False, and
		// the error asks for a retry.
		srv.Throttle("RunInstances", 10)
		Expect(ExpectObjectReconcileFailed(ctx, env.Client, ctrl, nc)).To(HaveOccurred())
		expectCondition(nc, nodeclass.ConditionTypeValidationSucceeded, metav1.ConditionFalse, "UnauthorizedOperation")
		expectCondition(nc, status.ConditionReady, metav1.ConditionFalse, "")

		// Permission restored.
		srv.ClearFaults()
		ExpectObjectReconciled(ctx, env.Client, ctrl, nc)
		expectCondition(nc, nodeclass.ConditionTypeValidationSucceeded, metav1.ConditionTrue, "")
		expectCondition(nc, status.ConditionReady, metav1.ConditionTrue, "")
	})
})
