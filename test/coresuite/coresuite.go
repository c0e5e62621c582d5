// Package coresuite is what the envtest suites that drive Karpenter core's
// provisioner over karpenter-gpu's cloud provider share (test/envtest on the
// fake fleet, providers/aws/envtest on the AWS backend): the wiring of
// core's provisioner, NodeClaim lifecycle controller and cluster state with
// the GPUNodeClass status controller, the provision-and-launch step the
// specs drive, and the reset between specs.
package coresuite

import (
	"context"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/controllers/dynamicresources/deviceallocation"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeclaim/lifecycle"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/state/nodepoolhealth"
	"sigs.k8s.io/karpenter/pkg/state/virtualpods"
	"sigs.k8s.io/karpenter/pkg/test"
	. "sigs.k8s.io/karpenter/pkg/test/expectations" //nolint:revive

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// Core is karpenter-gpu's cloud provider over one backend, with Karpenter
// core's provisioner, NodeClaim lifecycle controller and cluster state and
// the GPUNodeClass status controller, on an envtest environment.
type Core struct {
	Env           *test.Environment
	CloudProvider *gpucp.CloudProvider
	Recorder      events.Recorder
	Cluster       *state.Cluster
	Provisioner   *provisioning.Provisioner
	Lifecycle     *lifecycle.Controller
	NodeClass     *nodeclass.Controller
}

// CloudProvider is karpenter-gpu's cloud provider over backend on env
// (whose clock it shares), tagging instances with clusterName, for a Ginkgo
// BeforeSuite.
func CloudProvider(env *test.Environment, backend gpucp.Backend, clusterName string) *gpucp.CloudProvider {
	GinkgoHelper()
	cp, err := gpucp.New(gpucp.Options{KubeClient: env.Client, Backend: backend, Clock: env.Clock, ClusterName: clusterName})
	Expect(err).ToNot(HaveOccurred())
	return cp
}

// New wires Core over backend on env (whose clock every part shares), for a
// Ginkgo BeforeSuite; instances are tagged with clusterName. Events go to a
// fake recorder.
func New(env *test.Environment, backend gpucp.Backend, clusterName string) *Core {
	GinkgoHelper()
	cp := CloudProvider(env, backend, clusterName)
	c := &Core{Env: env, CloudProvider: cp, Recorder: events.NewRecorder(&record.FakeRecorder{})}
	c.Cluster = state.NewCluster(env.Clock, env.Client, cp)
	c.Provisioner = provisioning.NewProvisioner(env.Client, c.Recorder, cp, c.Cluster, env.Clock,
		deviceallocation.NewController(env.Client), virtualpods.NewVirtualPodCache(env.Client))
	c.Lifecycle = lifecycle.NewController(env.Clock, env.Client, cp, c.Recorder, c.Cluster, nodepoolhealth.NewState(), nil)
	c.NodeClass = nodeclass.NewController(nodeclass.Options{KubeClient: env.Client, Backend: backend})
	return c
}

// ResolvedNodeClass applies nc, runs the GPUNodeClass status controller on
// it and returns it as the API server has it, which must be Ready.
func (c *Core) ResolvedNodeClass(ctx context.Context, nc *v1alpha1.GPUNodeClass) *v1alpha1.GPUNodeClass {
	GinkgoHelper()
	ExpectApplied(ctx, c.Env.Client, nc)
	ExpectObjectReconciled(ctx, c.Env.Client, c.NodeClass, nc)
	stored := ExpectExists(ctx, c.Env.Client, nc)
	Expect(stored.StatusConditions().Root().IsTrue()).To(BeTrue(), "GPUNodeClass should be Ready: %+v", stored.Status.Conditions)
	return stored
}

// ProvisionAndLaunch applies the pods, runs core's provisioner for the
// pending pods, then core's NodeClaim lifecycle controller on each new
// NodeClaim (which calls the provider's Create, and so the backend's
// launch), and returns the launched NodeClaims as the API server has them.
func (c *Core) ProvisionAndLaunch(ctx context.Context, pods ...*corev1.Pod) []*karpv1.NodeClaim {
	GinkgoHelper()
	for _, p := range pods {
		ExpectApplied(ctx, c.Env.Client, p)
	}
	results, err := c.Provisioner.Schedule(ctx)
	Expect(err).ToNot(HaveOccurred())
	var out []*karpv1.NodeClaim
	for _, nc := range results.NewNodeClaims {
		name, err := c.Provisioner.Create(ctx, nc)
		Expect(err).ToNot(HaveOccurred())
		nodeClaim := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}
		ExpectObjectReconciled(ctx, c.Env.Client, c.Lifecycle, nodeClaim)
		out = append(out, ExpectExists(ctx, c.Env.Client, nodeClaim))
	}
	return out
}

// Reset, for a Ginkgo AfterEach, removes what a spec left and starts the
// next spec from the wall clock (controlplane.Cleanup), an empty
// capacity-refusal cache and empty cluster state.
func (c *Core) Reset(ctx context.Context) {
	GinkgoHelper()
	controlplane.Cleanup(ctx, c.Env)
	c.CloudProvider.Unavailable().Flush()
	c.Cluster.Reset()
}
