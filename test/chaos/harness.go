// Package chaos runs the full karpenter-gpu controller set in-process
// against a real kube-apiserver and etcd (envtest) on the fake fleet, under a
// schedule of injected faults (see chaos_test.go). The harness in this file
// is also used by test/rbac to record the requests the controller makes.
package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/samber/lo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/metrics"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/overlay"
	"sigs.k8s.io/karpenter/pkg/controllers/node/health"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeoverlay"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	coreoptions "sigs.k8s.io/karpenter/pkg/operator/options"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	gpuoptions "github.com/karpenter-gpu/karpenter-gpu/pkg/operator/options"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/process"
	"github.com/karpenter-gpu/karpenter-gpu/test/syncbuf"
)

// RepoRoot is the module root.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ControlPlane is an envtest API server and etcd with the project's CRDs.
type ControlPlane struct {
	Env        *envtest.Environment
	Config     *rest.Config // admin (system:masters)
	Kube       client.Client
	Kubeconfig string // admin kubeconfig file, for kube-scheduler
}

// StartControlPlane starts etcd and kube-apiserver from controlplane.Assets
// (KUBEBUILDER_ASSETS, else bin/k8s; failing, never skipping, when they are
// missing) with pkg/apis.CRDs (GPUNodeClass and core's karpenter.sh CRDs).
func StartControlPlane(t *testing.T) *ControlPlane {
	t.Helper()
	return StartControlPlaneWithCRDs(t, apis.CRDs)
}

// StartControlPlaneWithCRDs is StartControlPlane with the given CRDs, e.g.
// another Karpenter's karpenter.sh CRDs beside karpenter-gpu's own.
func StartControlPlaneWithCRDs(t *testing.T, crds []*apiextensionsv1.CustomResourceDefinition) *ControlPlane {
	t.Helper()
	assets, err := controlplane.Assets()
	if err != nil {
		t.Fatal(err)
	}
	copies := make([]*apiextensionsv1.CustomResourceDefinition, len(crds))
	for i, crd := range crds {
		copies[i] = crd.DeepCopy()
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ErrorIfCRDPathMissing: true, CRDs: copies}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kube, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	cp := &ControlPlane{Env: env, Config: cfg, Kube: kube}
	cp.Kubeconfig = process.AdminKubeconfig(t, env, "chaos-admin")
	return cp
}

// UserConfig returns a rest.Config authenticating as name (no groups), e.g.
// a service account's user name, so RBAC applies to it.
func (cp *ControlPlane) UserConfig(t *testing.T, name string) *rest.Config {
	t.Helper()
	user, err := cp.Env.ControlPlane.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return user.Config()
}

// StartScheduler runs the real kube-scheduler until the test ends.
func (cp *ControlPlane) StartScheduler(t *testing.T) {
	t.Helper()
	assets, err := controlplane.Assets("kube-scheduler")
	if err != nil {
		t.Fatal(err)
	}
	process.KubeScheduler(assets, cp.Kubeconfig).Start(t)
}

// SkewClock is the real clock plus an offset that only grows: it lets a test
// jump past Karpenter core's fixed 15-minute registration timeout while the
// rest of the run (API server timestamps, requeues, kube-scheduler) stays on
// real time.
type SkewClock struct {
	clock.RealClock
	offset atomic.Int64
}

// Now implements clock.Clock.
func (c *SkewClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Since implements clock.Clock.
func (c *SkewClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Advance moves the clock forward by d.
func (c *SkewClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Reset returns the clock to real time.
func (c *SkewClock) Reset() { c.offset.Store(0) }

// LogBuffer collects every log line of the controllers (JSON, debug level).
type LogBuffer struct{ syncbuf.Buffer }

// TailOnFailure logs the buffer's last n lines when t has failed by its
// end.
func (b *LogBuffer) TailOnFailure(t testing.TB, n int) {
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(b.String(), "\n")
			t.Logf("--- last controller log lines ---\n%s", strings.Join(lo.Subset(lines, -n, uint(n)), "\n"))
		}
	})
}

// Logger returns a debug-level JSON logger writing to the buffer.
func (b *LogBuffer) Logger() logr.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zapr.NewLogger(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), b, zap.DebugLevel)))
}

// ConflictInjector wraps a client so that, while enabled, every Every-th
// write (update or patch, of objects or their status) fails with a 409
// Conflict before reaching the API server, as a concurrent writer would
// cause. Counting is deterministic in the order writes arrive.
type ConflictInjector struct {
	Every   int64
	enabled atomic.Bool
	writes  atomic.Int64
	faults  atomic.Int64
}

// Enable turns injection on or off.
func (ci *ConflictInjector) Enable(on bool) { ci.enabled.Store(on) }

// Injected is how many conflicts were returned.
func (ci *ConflictInjector) Injected() int64 { return ci.faults.Load() }

func (ci *ConflictInjector) conflict(obj client.Object) error {
	if ci == nil || !ci.enabled.Load() || ci.Every <= 0 || ci.writes.Add(1)%ci.Every != 0 {
		return nil
	}
	ci.faults.Add(1)
	gvk, _ := apiutil.GVKForObject(obj, scheme.Scheme)
	return apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, obj.GetName(),
		errors.New("the object has been modified; please apply your changes to the latest version and try again (injected)"))
}

// Wrap returns c with conflicts injected (controller-runtime's interceptor
// over c; c's watches are not used).
func (ci *ConflictInjector) Wrap(c client.Client) client.Client {
	return interceptor.NewClient(unwatched{c}, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return ci.write(obj, func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return ci.write(obj, func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return ci.write(obj, func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			return ci.write(obj, func() error { return c.SubResource(sub).Patch(ctx, obj, patch, opts...) })
		},
	})
}

// write makes the write, or fails it with a conflict when one is due.
func (ci *ConflictInjector) write(obj client.Object, do func() error) error {
	if err := ci.conflict(obj); err != nil {
		return err
	}
	return do()
}

// unwatched is a client as the interceptor takes one; the manager's client
// does not watch.
type unwatched struct{ client.Client }

func (unwatched) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("the conflict-injecting client does not watch")
}

// ControllerOptions assemble one controller instance (one "process").
type ControllerOptions struct {
	Config *rest.Config
	Fleet  *fake.Fleet
	// Clock is the controllers' clock (core's, the cloud provider's).
	Clock clock.Clock
	// KubeletClock is the fake kubelets' and the fleet GC's (default Clock):
	// a test that skews Clock keeps the fake cloud on real time.
	KubeletClock clock.Clock
	// Args are controller flags (core's and karpenter-gpu's), as the binary
	// takes them, e.g. --batch-idle-duration=1s.
	Args              []string
	RegistrationDelay time.Duration
	// Conflicts, when set, wraps the controllers' client (not the fake
	// kubelet's).
	Conflicts *ConflictInjector
	Logger    logr.Logger
	// LeaderElection runs leader election in LeaderElectionNamespace.
	LeaderElection          bool
	LeaderElectionNamespace string
	// Orphan collection of the fake fleet (defaults: 2m / 2m).
	GCGracePeriod, GCInterval time.Duration
}

var starts atomic.Int32

// Controller is a running controller instance.
type Controller struct {
	cancel context.CancelFunc
	done   chan error
	GC     *orphans.Controller
}

// Options parses controller flags into core's and karpenter-gpu's options,
// as the binary does (without reading os.Args).
func Options(args ...string) (*coreoptions.Options, *gpuoptions.Options, error) {
	fs := &coreoptions.FlagSet{FlagSet: flag.NewFlagSet("karpenter", flag.ContinueOnError)}
	core, gpu := &coreoptions.Options{}, &gpuoptions.Options{}
	core.AddFlags(fs)
	gpu.AddFlags(fs)
	if err := core.Parse(fs, args...); err != nil {
		return nil, nil, err
	}
	if err := gpu.Parse(fs, args...); err != nil {
		return nil, nil, err
	}
	return core, gpu, nil
}

// StartController assembles the controller set as cmd/controller does
// (core's operator setup: options in the context, field indexers, cluster
// state, decorated cloud provider, pkg/operator.NewControllers, the fake
// registrar and node lifecycle) and runs it in a fresh manager until Stop.
func StartController(parent context.Context, o ControllerOptions) (*Controller, error) {
	coreOpts, gpuOpts, err := Options(append([]string{"--disable-leader-election=" + fmt.Sprint(!o.LeaderElection), "--backend=fake",
		"--cluster-name=chaos", "--log-level=debug"}, o.Args...)...)
	if err != nil {
		return nil, err
	}
	if starts.Add(1) > 1 {
		// Core's controllers register some Prometheus collectors when they
		// are constructed; a second controller in this process gets a fresh
		// registry, as a restarted process would.
		crmetrics.Registry = prometheus.NewRegistry()
	}
	log.SetLogger(o.Logger)
	klog.SetLogger(o.Logger)
	ctx := log.IntoContext(gpuOpts.ToContext(coreoptions.ToContext(context.Background(), coreOpts)), o.Logger)
	mgr, err := NewManager(ctx, o.Config, coreOpts, o.Logger, o.LeaderElection, o.LeaderElectionNamespace)
	if err != nil {
		return nil, err
	}
	clk := lo.Ternary[clock.Clock](o.Clock == nil, clock.RealClock{}, o.Clock)
	kubeletClk := lo.Ternary(o.KubeletClock == nil, clk, o.KubeletClock)
	kubeClient := mgr.GetClient()
	if o.Conflicts != nil {
		kubeClient = o.Conflicts.Wrap(kubeClient)
	}
	ctrls, err := Assemble(ctx, mgr, kubeClient, o.Fleet, clk, gpuOpts)
	if err != nil {
		return nil, err
	}
	c := &Controller{done: make(chan error, 1),
		GC: orphans.NewController(o.Fleet.OrphanOptions(orphans.Options{KubeClient: kubeClient, GracePeriod: o.GCGracePeriod, Interval: o.GCInterval}))}
	// The fake cloud's kubelets use the uninjected client: they are not the
	// controller.
	all := append(ctrls.All, c.GC, fake.NewRegistrar(fake.RegistrarOptions{
		KubeClient: mgr.GetClient(), Fleet: o.Fleet, Clock: kubeletClk, RegistrationDelay: o.RegistrationDelay, StatusInterval: 2 * time.Second,
	}), fake.NewNodeLifecycle(fake.NodeLifecycleOptions{KubeClient: mgr.GetClient()}))
	for _, r := range all {
		if err := r.Register(ctx, mgr); err != nil {
			return nil, fmt.Errorf("registering %T, %w", r, err)
		}
	}
	runCtx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	go func() { c.done <- mgr.Start(runCtx) }()
	return c, nil
}

// Stop stops the manager (as a killed process would stop: in-flight calls
// see their context cancelled) and waits for it.
func (c *Controller) Stop() error {
	c.cancel()
	select {
	case err := <-c.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("manager did not stop within 30s")
	}
}

// NewManager creates the controller-runtime manager as core's operator does
// (client QPS/burst from core's options, leader election on a Lease, the
// kube-node-lease cache restriction) with the field indexes core registers.
// Metrics and probes are off; a restarted controller in the same process may
// register the same controller names again.
func NewManager(ctx context.Context, cfg *rest.Config, coreOpts *coreoptions.Options, logger logr.Logger, leaderElection bool, leaderElectionNamespace string) (manager.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(coreOpts.KubeClientQPS), coreOpts.KubeClientBurst
	cfg.UserAgent = "karpenter-gpu-chaos"
	shutdown := 5 * time.Second
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme.Scheme,
		Logger:                        logger,
		LeaderElection:                leaderElection,
		LeaderElectionID:              coreOpts.LeaderElectionName,
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionResourceLock:    resourcelock.LeasesResourceLock,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       server.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		GracefulShutdownTimeout:       &shutdown,
		BaseContext:                   func() context.Context { return ctx },
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Field: fields.SelectorFromSet(fields.Set{"metadata.namespace": "kube-node-lease"})},
		}},
		Controller: ctrlconfig.Controller{SkipNameValidation: lo.ToPtr(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager, %w", err)
	}
	if err := setupIndexers(ctx, mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Assemble builds the controller set as cmd/controller does: the provider
// over backend, core's metrics and overlay decorations, cluster state with
// the repair policies, pkg/operator.NewControllers.
func Assemble(ctx context.Context, mgr manager.Manager, kubeClient client.Client, backend gpucp.Backend, clk clock.Clock, gpuOpts *gpuoptions.Options) (*operator.Controllers, error) {
	instanceTypeStore := nodeoverlay.NewInstanceTypeStore()
	provider, err := gpucp.New(gpucp.Options{KubeClient: kubeClient, Backend: backend, Clock: clk, ClusterName: gpuOpts.ClusterName})
	if err != nil {
		return nil, err
	}
	undecorated := metrics.Decorate(provider)
	cloudProvider := overlay.Decorate(undecorated, kubeClient, instanceTypeStore)
	matcher, err := health.NewRepairPolicyMatcher(ctx, cloudProvider)
	if err != nil {
		return nil, err
	}
	cluster := state.NewCluster(clk, kubeClient, cloudProvider, state.WithRepairPolicyMatcher(matcher))
	return operator.NewControllers(ctx, operator.Options{
		Manager: mgr, Clock: clk, KubeClient: kubeClient, Recorder: events.NewRecorder(mgr.GetEventRecorderFor("karpenter")), //nolint:staticcheck // as core's operator
		CloudProvider: cloudProvider, Undecorated: undecorated, Backend: backend, Cluster: cluster,
		InstanceTypeStore: instanceTypeStore, Policy: operator.Policy(gpuOpts.Policy), DirectMinPods: gpuOpts.DirectPackingMinPods,
	})
}

// setupIndexers registers the field indexes core's operator registers
// (sigs.k8s.io/karpenter/pkg/operator setupIndexers, unexported there).
func setupIndexers(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	return errors.Join(
		idx.IndexField(ctx, &corev1.Pod{}, "spec.nodeName", func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }),
		idx.IndexField(ctx, &corev1.Node{}, "spec.providerID", func(o client.Object) []string { return []string{o.(*corev1.Node).Spec.ProviderID} }),
		idx.IndexField(ctx, &storagev1.VolumeAttachment{}, "spec.nodeName", func(o client.Object) []string {
			return []string{o.(*storagev1.VolumeAttachment).Spec.NodeName}
		}),
		idx.IndexField(ctx, &karpv1.NodeClaim{}, "status.providerID", func(o client.Object) []string { return []string{o.(*karpv1.NodeClaim).Status.ProviderID} }),
		idx.IndexField(ctx, &karpv1.NodeClaim{}, "spec.nodeClassRef.group", func(o client.Object) []string {
			return []string{o.(*karpv1.NodeClaim).Spec.NodeClassRef.Group}
		}),
		idx.IndexField(ctx, &karpv1.NodeClaim{}, "spec.nodeClassRef.kind", func(o client.Object) []string {
			return []string{o.(*karpv1.NodeClaim).Spec.NodeClassRef.Kind}
		}),
		idx.IndexField(ctx, &karpv1.NodeClaim{}, "spec.nodeClassRef.name", func(o client.Object) []string {
			return []string{o.(*karpv1.NodeClaim).Spec.NodeClassRef.Name}
		}),
		idx.IndexField(ctx, &karpv1.NodePool{}, "spec.template.spec.nodeClassRef.group", func(o client.Object) []string {
			return []string{o.(*karpv1.NodePool).Spec.Template.Spec.NodeClassRef.Group}
		}),
		idx.IndexField(ctx, &karpv1.NodePool{}, "spec.template.spec.nodeClassRef.kind", func(o client.Object) []string {
			return []string{o.(*karpv1.NodePool).Spec.Template.Spec.NodeClassRef.Kind}
		}),
		idx.IndexField(ctx, &karpv1.NodePool{}, "spec.template.spec.nodeClassRef.name", func(o client.Object) []string {
			return []string{o.(*karpv1.NodePool).Spec.Template.Spec.NodeClassRef.Name}
		}),
	)
}
