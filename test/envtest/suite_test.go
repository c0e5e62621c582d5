// Package envtest runs karpenter-gpu against a real kube-apiserver and etcd
// (built from source by tools/build-envtest.sh) with Karpenter core's
// provisioner and NodeClaim lifecycle controllers and the fake fleet.
package envtest_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/dynamicresources/deviceallocation"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/state/nodepoolhealth"
	"sigs.k8s.io/karpenter/pkg/state/virtualpods"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"
	. "sigs.k8s.io/karpenter/pkg/utils/testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

var (
	ctx           context.Context
	env           *test.Environment
	fleet         *fake.Fleet
	cloudProvider *gpucp.CloudProvider
	cluster       *state.Cluster
	prov          *provisioning.Provisioner
	lifecycleCtrl *lifecycle.Controller
	nodeClassCtrl *nodeclass.Controller
	idleCtrl      *idlegpu.Controller
)

func TestEnvtest(t *testing.T) {
	ctx = TestContextWithLogger(t)
	RegisterFailHandler(Fail)
	RunSpecs(t, "karpenter-gpu envtest")
}

var _ = BeforeSuite(func() {
	env = controlplane.NewEnvironment(controlplane.FieldIndexers(ctx))
	ctx = options.ToContext(ctx, test.Options())
	fleet = fake.NewFleet(fake.Options{Clock: env.Clock, Seed: 1})
	var err error
	cloudProvider, err = gpucp.New(gpucp.Options{KubeClient: env.Client, Backend: fleet, Clock: env.Clock, ClusterName: "envtest"})
	Expect(err).ToNot(HaveOccurred())
	recorder := events.NewRecorder(&record.FakeRecorder{})
	cluster = state.NewCluster(env.Clock, env.Client, cloudProvider)
	prov = provisioning.NewProvisioner(env.Client, recorder, cloudProvider, cluster, env.Clock, deviceallocation.NewController(env.Client), virtualpods.NewVirtualPodCache(env.Client))
	lifecycleCtrl = lifecycle.NewController(env.Clock, env.Client, cloudProvider, recorder, cluster, nodepoolhealth.NewState(), nil)
	nodeClassCtrl = nodeclass.NewController(nodeclass.Options{KubeClient: env.Client, Backend: fleet})
	idleCtrl = idlegpu.NewController(idlegpu.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: recorder, CloudProvider: cloudProvider})
})

var _ = AfterSuite(func() {
	// env is nil when BeforeSuite failed before starting it.
	Expect(controlplane.StopEnvironment(env)).To(Succeed())
})

var _ = AfterEach(func() {
	ExpectCleanedUp(ctx, env.Client)
	// Specs step the clock (idle timers) and record capacity refusals; start
	// each one from the wall clock (the API server stamps creation times with
	// it) and an empty refusal cache.
	env.Clock.SetTime(time.Now())
	cloudProvider.Unavailable().Flush()
	Expect(env.Client.DeleteAllOf(ctx, &v1alpha1.GPUNodeClass{})).To(Succeed())
	cluster.Reset()
})

// deletionRequested reports whether a NodeClaim is being deleted or gone.
func deletionRequested(claim *karpv1.NodeClaim) bool {
	GinkgoHelper()
	latest := &karpv1.NodeClaim{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(claim), latest); err != nil {
		Expect(errors.IsNotFound(err)).To(BeTrue())
		return true
	}
	return !latest.DeletionTimestamp.IsZero()
}
