// Package aws_test runs the ProvisioningRequest controller on the AWS
// backend: a real kube-apiserver and etcd, the controller, Karpenter core's
// NodeClaim lifecycle and cluster-state informers in a controller-runtime
// manager, and the production aws-sdk-go-v2 clients against the in-process
// EC2 endpoint (providers/aws/fakeaws). A gang attempt's NodeClaims,
// launched one by one by core, reach EC2 as one instant CreateFleet with
// MinTargetCapacity equal to the gang (providers/aws/instance/gang_batch.go).
package aws_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/gang/gangtest"
)

const clusterName = "gang-aws"

var (
	ctx           context.Context
	env           *test.Environment
	srv           *fakeaws.Server
	backend       *awsbackend.Backend
	cloudProvider *gpucp.CloudProvider
	nodeClassCtrl *nodeclass.Controller
	zones         = []string{"us-east-1a", "us-east-1b", "us-east-1c"}
)

func TestGangAWS(t *testing.T) {
	controlplane.RunSuite(t, &ctx, "karpenter-gpu gang on the AWS backend (envtest, in-process EC2)")
}

var _ = BeforeSuite(func() {
	env, ctx = controlplane.NewCoreEnvironment(ctx, test.WithCRDs(pr.CRD()))
	srv = fakeaws.New(inventory())
	var err error
	backend, err = awsenv.NewBackend(ctx, srv, awsbackend.Options{
		Region: "us-east-1", ClusterName: clusterName, ClusterEndpoint: "https://api.gang.example", ClusterCABundle: "Q0E=",
		KubernetesVersion: "1.33", Clock: clock.RealClock{}, GangWait: 5 * time.Second,
	})
	Expect(err).ToNot(HaveOccurred())
	cloudProvider, err = gpucp.New(gpucp.Options{KubeClient: env.Client, Backend: backend, Clock: clock.RealClock{}, ClusterName: clusterName})
	Expect(err).ToNot(HaveOccurred())
	nodeClassCtrl = nodeclass.NewController(nodeclass.Options{KubeClient: env.Client, Backend: backend})
})

var _ = AfterSuite(func() {
	srv.Close()
	Expect(controlplane.StopEnvironment(env)).To(Succeed())
})

var _ = AfterEach(func() {
	controlplane.Cleanup(ctx, env)
	cloudProvider.Unavailable().Flush()
})

// inventory: three zones, one 8-GPU type (p5.48xlarge) and a 1-GPU one.
func inventory() fakeaws.Inventory {
	return awsenv.Inventory(clusterName, []fakeaws.InstanceType{
		{Name: "g6.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "L4", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 22888, ENIs: 4, IPsPerENI: 15},
		{Name: "p5.48xlarge", Arch: "x86_64", VCPU: 192, MemoryMiB: 2097152, GPUName: "H100", GPUManufacturer: "NVIDIA", GPUCount: 8, GPUMemoryMiB: 81920, EFA: 32, ENIs: 64, IPsPerENI: 50},
	}, map[string]float64{"g6.xlarge": 0.8048, "p5.48xlarge": 55.04})
}

// startManager runs the ProvisioningRequest controller, core's NodeClaim
// lifecycle and cluster-state informers until the spec ends.
func startManager() {
	GinkgoHelper()
	gangtest.StartManager(ctx, env.Config, cloudProvider, pr.Options{MaxAttempts: 3, RetryBackoff: 2 * time.Second, LaunchTimeout: 20 * time.Second})
}

func nodeClaimsOf(uid string) []karpv1.NodeClaim {
	GinkgoHelper()
	list := &karpv1.NodeClaimList{}
	Expect(env.Client.List(ctx, list, client.MatchingLabels{pr.LabelRequest: uid})).To(Succeed())
	return list.Items
}

// gangRequest is a best-effort-atomic request for four 8-GPU workers.
func gangRequest() *autoscalingv1.ProvisioningRequest {
	GinkgoHelper()
	tmpl := &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: "worker-" + test.RandomName(), Namespace: "default"},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Tolerations: []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{Name: "w", Image: "trainer", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"), v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8")},
				Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8")}}}}}}}
	ExpectApplied(ctx, env.Client, tmpl)
	return &autoscalingv1.ProvisioningRequest{ObjectMeta: metav1.ObjectMeta{Name: "job-" + test.RandomName(), Namespace: "default"},
		Spec: autoscalingv1.ProvisioningRequestSpec{ProvisioningClassName: autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp,
			PodSets: []autoscalingv1.PodSet{{PodTemplateRef: autoscalingv1.Reference{Name: tmpl.Name}, Count: 4}}}}
}

// setupNodeClassAndPool applies a resolved GPUNodeClass and an on-demand
// amd64 NodePool over it, and clears the endpoint's request log.
func setupNodeClassAndPool() {
	nc := controlplane.DiscoveryGPUNodeClass("gpu-"+test.RandomName(), clusterName)
	ExpectApplied(ctx, env.Client, nc)
	ExpectObjectReconciled(ctx, env.Client, nodeClassCtrl, nc)
	Expect(ExpectExists(ctx, env.Client, nc).StatusConditions().Root().IsTrue()).To(BeTrue())
	np := controlplane.NodePool(nc,
		karpv1.NodeSelectorRequirementWithMinValues{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
		karpv1.NodeSelectorRequirementWithMinValues{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}})
	np.Spec.Limits = nil // the endpoint's capacity bounds the gangs, not a limit
	ExpectApplied(ctx, env.Client, np)
	// Ready at the NodePool's generation, as core's NodePool validation and
	// readiness controllers (not run here) keep it: core's registration
	// marks NodeRegistrationHealthy at the generation, and conditions of an
	// older one would leave the NodePool not Ready.
	np = ExpectExists(ctx, env.Client, np)
	for _, t := range []string{karpv1.ConditionTypeValidationSucceeded, karpv1.ConditionTypeNodeClassReady, karpv1.ConditionTypeNodeRegistrationHealthy} {
		np.StatusConditions().SetTrue(t)
	}
	Expect(env.Client.Status().Update(ctx, np)).To(Succeed())
	srv.ResetRequests()
	DeferCleanup(func() {
		for _, z := range zones {
			srv.SetCapacity(fakeaws.Offering{InstanceType: "p5.48xlarge", Zone: z, CapacityType: fakeaws.OnDemand}, -1)
		}
	})
}

var _ = Describe("Gang launches on EC2", func() {
	BeforeEach(setupNodeClassAndPool)

	It("launches the gang's NodeClaims from one CreateFleet with MinTargetCapacity 4 in one zone", func() {
		startManager()
		p := gangRequest()
		start := time.Now()
		ExpectApplied(ctx, env.Client, p)
		p = ExpectExists(ctx, env.Client, p)
		Eventually(func(g Gomega) {
			claims := nodeClaimsOf(string(p.UID))
			g.Expect(claims).To(HaveLen(4))
			for _, c := range claims {
				g.Expect(c.StatusConditions().Get(karpv1.ConditionTypeLaunched).IsTrue()).To(BeTrue(), "NodeClaim %s launched", c.Name)
			}
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		launched := time.Since(start)
		fleets := srv.Requests("CreateFleet")
		Expect(fleets).To(HaveLen(1), "one CreateFleet for the whole gang")
		form := fleets[0].Form
		Expect(form.Get("Type")).To(Equal("instant"))
		Expect(form.Get("TargetCapacitySpecification.TotalTargetCapacity")).To(Equal("4"))
		Expect(form.Get("OnDemandOptions.MinTargetCapacity")).To(Equal("4"))
		Expect(form.Get("OnDemandOptions.SingleAvailabilityZone")).To(Equal("true"))
		Expect(form.Get("OnDemandOptions.SingleInstanceType")).To(Equal("true"))
		insts := srv.LiveInstances()
		Expect(insts).To(HaveLen(4))
		Expect(lo.Uniq(lo.Map(insts, func(i fakeaws.Instance, _ int) string { return i.Zone }))).To(HaveLen(1), "every instance in one zone")
		claims := nodeClaimsOf(string(p.UID))
		Expect(lo.Map(insts, func(i fakeaws.Instance, _ int) string { return i.Tags[gpucp.TagNodeClaim] })).To(
			ConsistOf(lo.Map(claims, func(c karpv1.NodeClaim, _ int) any { return c.Name })...), "each instance tagged with its own NodeClaim")
		AddReportEntry("gang on EC2", fmt.Sprintf("4 x p5.48xlarge from 1 CreateFleet (MinTargetCapacity 4) in %s, %s from request to every NodeClaim launched",
			insts[0].Zone, launched.Round(10*time.Millisecond)))

		// Deleting the request deletes its in-flight NodeClaims; core
		// terminates their instances.
		ExpectDeleted(ctx, env.Client, p)
		Eventually(func(g Gomega) {
			g.Expect(lo.Map(nodeClaimsOf(string(p.UID)), func(c karpv1.NodeClaim, _ int) string {
				return fmt.Sprintf("%s deleting=%v finalizers=%v conditions=%v", c.Name, !c.DeletionTimestamp.IsZero(), c.Finalizers, c.Status.Conditions)
			})).To(BeEmpty())
			g.Expect(srv.LiveInstances()).To(BeEmpty())
		}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	})

	It("a gang no zone holds is refused by EC2 whole in each zone and the request fails with no instance ever launched", func() {
		for _, z := range zones {
			srv.SetCapacity(fakeaws.Offering{InstanceType: "p5.48xlarge", Zone: z, CapacityType: fakeaws.OnDemand}, 3)
		}
		startManager()
		before := len(srv.Instances())
		p := gangRequest()
		ExpectApplied(ctx, env.Client, p)
		Eventually(func(g Gomega) {
			cur := &autoscalingv1.ProvisioningRequest{}
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, autoscalingv1.Failed)).To(BeTrue(), "conditions %v", cur.Status.Conditions)
			p = cur
		}).WithTimeout(2 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		f := meta.FindStatusCondition(p.Status.Conditions, autoscalingv1.Failed)
		Expect(f.Reason).To(Equal(pr.ReasonCapacityIsNotFound))
		Expect(f.Message).To(ContainSubstring("attempt 3 of 3 failed"))
		fleets := srv.Requests("CreateFleet")
		Expect(fleets).To(HaveLen(3), "one all-or-nothing CreateFleet per attempt")
		fleetZones := lo.Uniq(lo.Map(fleets, func(r fakeaws.Request, _ int) string {
			Expect(r.Form.Get("OnDemandOptions.MinTargetCapacity")).To(Equal("4"))
			return r.Form.Get("LaunchTemplateConfigs.1.Overrides.1.AvailabilityZone")
		}))
		Expect(fleetZones).To(ConsistOf(zones), "each retry in a zone that has not refused")
		Expect(srv.Instances()).To(HaveLen(before), "EC2 refused each gang whole: no instance was ever started")
		Eventually(func() []karpv1.NodeClaim { return nodeClaimsOf(string(p.UID)) }).WithTimeout(30 * time.Second).Should(BeEmpty())
	})
})
