// Package gang_test runs the ProvisioningRequest controller against a real
// kube-apiserver and etcd (bin/k8s, built by tools/build-envtest.sh) with the
// ProvisioningRequest CRD from the pinned autoscaler API module, Karpenter
// core's NodeClaim lifecycle controller, the fake fleet and its kwok-like
// registrar: all-or-nothing GPU capacity, end to end below the scheduler.
package gang_test

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/state/nodepoolhealth"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/coresuite"
)

var (
	ctx           context.Context
	env           *test.Environment
	fleet         *fake.Fleet
	cloudProvider *gpucp.CloudProvider
	cluster       *state.Cluster
	lifecycleCtrl *lifecycle.Controller
	nodeClassCtrl *nodeclass.Controller
	registrar     *fake.Registrar
	recorder      events.Recorder
)

func TestGang(t *testing.T) {
	controlplane.RunSuite(t, &ctx, "karpenter-gpu gang (ProvisioningRequest) envtest")
}

var _ = BeforeSuite(func() {
	env, ctx = controlplane.NewCoreEnvironment(ctx, test.WithCRDs(provisioningrequest.CRD()))
	// Gang members' launches are gathered into one all-or-nothing group
	// launch, as on AWS: lifecycle reconciles run concurrently (launchAll).
	fleet = fake.NewFleet(fake.Options{Clock: env.Clock, Seed: 1, GangWait: 10 * time.Second})
	cloudProvider = coresuite.CloudProvider(env, fleet, "envtest")
	recorder = events.NewRecorder(&record.FakeRecorder{})
	cluster = state.NewCluster(env.Clock, env.Client, cloudProvider)
	lifecycleCtrl = lifecycle.NewController(env.Clock, env.Client, cloudProvider, recorder, cluster, nodepoolhealth.NewState(), nil)
	nodeClassCtrl = nodeclass.NewController(nodeclass.Options{KubeClient: env.Client, Backend: fleet})
	registrar = fake.NewRegistrar(fake.RegistrarOptions{KubeClient: env.Client, Fleet: fleet, Clock: env.Clock})
})

var _ = AfterSuite(func() { Expect(controlplane.StopEnvironment(env)).To(Succeed()) })

var _ = AfterEach(func() {
	ExpectCleanedUp(ctx, env.Client)
	// Each spec starts with an empty fleet: terminate what the last one
	// left running (its NodeClaims were removed without core's finalizer).
	insts, err := fleet.List(ctx)
	Expect(err).ToNot(HaveOccurred())
	for _, i := range insts {
		if i.State != gpucp.InstanceStateTerminated {
			Expect(fleet.Terminate(ctx, i.ID)).To(Succeed())
		}
	}
	env.Clock.SetTime(time.Now())
	cloudProvider.Unavailable().Flush()
	Expect(env.Client.DeleteAllOf(ctx, &v1alpha1.GPUNodeClass{})).To(Succeed())
	cluster.Reset()
})

// Each spec starts without the requests and templates of the last one
// (core's cleanup does not know them): a spec's running manager would take
// them up. Here, not in AfterEach: a spec's manager stops in its
// DeferCleanup, after AfterEach.
var _ = BeforeEach(func() {
	Expect(env.Client.DeleteAllOf(ctx, &autoscalingv1.ProvisioningRequest{}, client.InNamespace("default"))).To(Succeed())
	Expect(env.Client.DeleteAllOf(ctx, &corev1.PodTemplate{}, client.InNamespace("default"))).To(Succeed())
})

// nodeClaimsOf lists the NodeClaims launched for a request.
func nodeClaimsOf(uid string) []*karpv1.NodeClaim {
	GinkgoHelper()
	list := &karpv1.NodeClaimList{}
	Expect(env.Client.List(ctx, list)).To(Succeed())
	var out []*karpv1.NodeClaim
	for i := range list.Items {
		if list.Items[i].Labels[provisioningrequest.LabelRequest] == uid {
			out = append(out, &list.Items[i])
		}
	}
	return out
}

// launchAll runs core's lifecycle (the provider's Create) on every
// NodeClaim at once, as core's lifecycle controller does with its
// concurrent reconciles: a gang's launches reach the fleet together and
// are launched, or refused, as one group.
func launchAll(claims []*karpv1.NodeClaim) {
	GinkgoHelper()
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() {
			defer GinkgoRecover()
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
		})
	}
	wg.Wait()
}

// limitP4d gives the fleet room for perZone on-demand p4d.24xlarge in
// every zone until the spec ends.
func limitP4d(perZone int) {
	for _, z := range zones {
		fleet.SetCapacity(p4dIn(z), perZone)
	}
	DeferCleanup(func() {
		for _, z := range zones {
			fleet.SetCapacity(p4dIn(z), -1)
		}
	})
}

func p4dIn(zone string) fake.Offering {
	return fake.Offering{InstanceType: "p4d.24xlarge", Zone: zone, CapacityType: karpv1.CapacityTypeOnDemand}
}
