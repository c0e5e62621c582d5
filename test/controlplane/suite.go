package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/option"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/test"
	"sigs.k8s.io/karpenter/pkg/test/expectations"
	coretesting "sigs.k8s.io/karpenter/pkg/utils/testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// RunSuite runs a package's Ginkgo specs, named description, as the test t:
// the whole of a suite's TestX. *ctx is first set to a context whose logger
// writes to t (core's TestContextWithLogger), for the suite's BeforeSuite
// and specs.
func RunSuite(t *testing.T, ctx *context.Context, description string) {
	*ctx = coretesting.TestContextWithLogger(t)
	gomega.RegisterFailHandler(ginkgo.Fail)
	ginkgo.RunSpecs(t, description)
}

// EnvironmentSuite registers the environment of a controller's own suite,
// for a package-level `var _ =`: a BeforeSuite that sets *env to
// NewEnvironment and then runs setup (nil: nothing), an AfterSuite that
// stops it and an AfterEach that runs Cleanup with *ctx (RunSuite's).
func EnvironmentSuite(ctx *context.Context, env **test.Environment, setup func()) bool {
	return registerSuite(func() { *env = NewEnvironment() }, setup, env, func() { Cleanup(*ctx, *env) })
}

// CoreSuite is EnvironmentSuite for a suite that runs core's controllers:
// its BeforeSuite sets *env and *ctx by NewCoreEnvironment(*ctx) before
// setup, and its AfterEach runs reset (nil: Cleanup).
func CoreSuite(ctx *context.Context, env **test.Environment, setup, reset func()) bool {
	if reset == nil {
		reset = func() { Cleanup(*ctx, *env) }
	}
	return registerSuite(func() { *env, *ctx = NewCoreEnvironment(*ctx) }, setup, env, reset)
}

func registerSuite(start, setup func(), env **test.Environment, afterEach func()) bool {
	ginkgo.BeforeSuite(func() {
		start()
		if setup != nil {
			setup()
		}
	})
	ginkgo.AfterSuite(func() { gomega.Expect(StopEnvironment(*env)).To(gomega.Succeed()) })
	ginkgo.AfterEach(afterEach)
	return true
}

// NewEnvironment is Karpenter core's test environment (a real kube-apiserver
// and etcd from Assets) with karpenter-gpu's CRDs, for a Ginkgo BeforeSuite:
// missing binaries fail the suite naming `make envtest-bin`.
func NewEnvironment(opts ...option.Function[test.EnvironmentOptions]) *test.Environment {
	ginkgo.GinkgoHelper()
	if _, err := Assets(); err != nil {
		ginkgo.Fail(err.Error())
	}
	return test.NewEnvironment(append([]option.Function[test.EnvironmentOptions]{test.WithCRDs(apis.CRDs...)}, opts...)...)
}

// NewCoreEnvironment is NewEnvironment with the FieldIndexers core's
// controllers look objects up by (and opts), for the BeforeSuite of a suite
// that runs core's controllers; the context returned is ctx with core's
// default operator options (test.Options()), which those controllers read.
func NewCoreEnvironment(ctx context.Context, opts ...option.Function[test.EnvironmentOptions]) (*test.Environment, context.Context) {
	ginkgo.GinkgoHelper()
	env := NewEnvironment(append([]option.Function[test.EnvironmentOptions]{FieldIndexers(ctx)}, opts...)...)
	return env, options.ToContext(ctx, test.Options())
}

// StopEnvironment stops env, for a Ginkgo AfterSuite; a nil env (BeforeSuite
// failed before starting it) is not an error.
func StopEnvironment(env *test.Environment) error {
	if env == nil {
		return nil
	}
	return env.Stop()
}

// Cleanup, for a Ginkgo AfterEach, removes what a spec left on env (core's
// objects (ExpectCleanedUp) and the GPUNodeClasses core's cleanup does not
// know) and starts the next spec from the wall clock: specs step env's
// fake clock, and the API server stamps creation times with the wall clock.
func Cleanup(ctx context.Context, env *test.Environment) {
	ginkgo.GinkgoHelper()
	expectations.ExpectCleanedUp(ctx, env.Client)
	gomega.Expect(env.Client.DeleteAllOf(ctx, &v1alpha1.GPUNodeClass{})).To(gomega.Succeed())
	env.Clock.SetTime(time.Now())
}

// FieldIndexers are the field indexes core's controllers look NodeClaims,
// Nodes and NodePools up by, for NewEnvironment.
func FieldIndexers(ctx context.Context) option.Function[test.EnvironmentOptions] {
	return test.WithFieldIndexers(
		test.NodeClaimProviderIDFieldIndexer(ctx), test.NodeProviderIDFieldIndexer(ctx),
		test.NodeClaimNodeClassRefFieldIndexer(ctx), test.NodePoolNodeClassRefFieldIndexer(ctx))
}

// RunManager runs mgr until the spec ends, for a Ginkgo spec that drives
// controllers through a controller-runtime manager: the spec's cleanup
// stops it and expects it to return without error within stop.
func RunManager(ctx context.Context, mgr manager.Manager, stop time.Duration) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	ginkgo.DeferCleanup(func() {
		cancel()
		gomega.Eventually(done, stop).Should(gomega.Receive(gomega.BeNil()))
	})
}

// ApplyInitialized applies objects and claim and then marks claim
// Initialized, as core's lifecycle controller leaves a running node (its
// status is a subresource: applied after the NodeClaim is created).
func ApplyInitialized(ctx context.Context, c client.Client, claim *karpv1.NodeClaim, objects ...client.Object) {
	ginkgo.GinkgoHelper()
	expectations.ExpectApplied(ctx, c, objects...)
	expectations.ExpectApplied(ctx, c, claim)
	claim.StatusConditions().SetTrue(karpv1.ConditionTypeInitialized)
	expectations.ExpectApplied(ctx, c, claim)
}

// DeletionRequested reports whether obj is being deleted or gone from the
// API server, for the specs that expect a controller to delete it.
func DeletionRequested(ctx context.Context, c client.Client, obj client.Object) bool {
	ginkgo.GinkgoHelper()
	latest := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), latest); err != nil {
		gomega.Expect(errors.IsNotFound(err)).To(gomega.BeTrue(), "getting %s", obj.GetName())
		return true
	}
	return !latest.GetDeletionTimestamp().IsZero()
}
