package provisioning

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	karpstate "sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator/options"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/coremirror"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// Packer is the glue between the cluster and the pure GPU packer
// (pkg/packing): it gathers the inputs core's NewScheduler read for the same
// loop, so the packer sees the same NodePools, instance types (the
// provider's cached objects), daemonsets and limits, and plugs
// RefineResults (Refiner) and PackPending (DirectPacker), both over
// packing.PackPods, into the provisioning loop.
type Packer struct {
	kube    client.Client
	cp      karpcp.CloudProvider
	cluster *karpstate.Cluster

	mu        sync.Mutex
	decisions []Decision
	keep      bool
}

// PackerOptions are NewPacker's inputs.
type PackerOptions struct {
	KubeClient    client.Client
	CloudProvider karpcp.CloudProvider
	Cluster       *karpstate.Cluster
	// KeepDecisions retains every Decision for Decisions (the simulator's
	// report); the controller keeps none.
	KeepDecisions bool
}

// NewPacker returns the GPU packer for the provisioning loop.
func NewPacker(o PackerOptions) *Packer {
	return &Packer{kube: o.KubeClient, cp: o.CloudProvider, cluster: o.Cluster, keep: o.KeepDecisions}
}

// Refine implements Refiner with RefineResults. Any error leaves core's
// decision standing.
func (r *Packer) Refine(ctx context.Context, results scheduling.Results) scheduling.Results {
	opts, err := r.Inputs(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "gathering packing inputs; launching core's NodeClaims")
		return results
	}
	out, d := RefineResults(ctx, &results, opts)
	gpumetrics.ObservePacking(d.CoreCost, d.PackedCost, d.Duration)
	if d.PodsRepacked > 0 {
		log.FromContext(ctx).Info("repacked GPU NodeClaims", "decision", d.String())
	}
	if r.keep {
		r.mu.Lock()
		r.decisions = append(r.decisions, d)
		r.mu.Unlock()
	}
	if out == nil {
		return results
	}
	return *out
}

// Decisions returns the decisions kept so far.
func (r *Packer) Decisions() []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Decision(nil), r.decisions...)
}

// Inputs are the packer's inputs for this loop, read as core's NewScheduler
// reads them: the dynamic, Ready, not deleting NodePools, their instance
// types, their remaining limits and the daemonset pods.
func (r *Packer) Inputs(ctx context.Context) (packing.Options, error) {
	nps, err := coremirror.SchedulingNodePools(ctx, r.kube, r.cp)
	if err != nil {
		return packing.Options{}, err
	}
	opts := packing.Options{
		NodePools:         nps,
		InstanceTypes:     map[string][]*karpcp.InstanceType{},
		Remaining:         map[string]corev1.ResourceList{},
		IgnorePreferences: options.FromContext(ctx).PreferencePolicy == options.PreferencePolicyIgnore,
	}
	for _, np := range nps {
		its, err := r.cp.GetInstanceTypes(ctx, np)
		if err != nil {
			return packing.Options{}, err
		}
		opts.InstanceTypes[np.Name] = its
		if len(np.Spec.Limits) > 0 {
			opts.Remaining[np.Name] = remaining(corev1.ResourceList(np.Spec.Limits), r.cluster.NodePoolResourcesFor(np.Name))
		}
	}
	if opts.DaemonSetPods, err = r.DaemonSetPods(ctx); err != nil {
		return packing.Options{}, err
	}
	return opts, nil
}

// DaemonSetPods are the daemonset pods as core's provisioner gives them to
// its scheduler (coremirror.DaemonSetPods).
func (r *Packer) DaemonSetPods(ctx context.Context) ([]*corev1.Pod, error) {
	return coremirror.DaemonSetPods(ctx, r.kube, r.cluster)
}

// Models implements DirectPacker: see packing.Models.
func (r *Packer) Models(p *corev1.Pod) bool { return packing.Models(p) }

// PackPending implements DirectPacker with PackPending (pending.go): new
// NodeClaims for pending GPU pods that no existing node holds (the direct
// path, without core's Solve). The pods it cannot place are returned for
// core's scheduler.
func (r *Packer) PackPending(ctx context.Context, pods []*corev1.Pod) ([]*scheduling.NodeClaim, []*corev1.Pod, error) {
	start := time.Now()
	opts, err := r.Inputs(ctx)
	if err != nil {
		return nil, pods, err
	}
	plan := PackPending(pods, opts)
	left := make([]*corev1.Pod, 0, len(plan.Left))
	for _, p := range pods {
		if _, ok := plan.Left[p]; ok {
			left = append(left, p)
		}
	}
	d := Decision{PodsConsidered: len(pods), PodsRepacked: len(pods) - len(left), NodeClaimsAfter: len(plan.NodeClaims),
		PackedCost: plan.Cost, Direct: true, Duration: time.Since(start)}
	gpumetrics.ObserveDirectPacking(d.Duration)
	log.FromContext(ctx).V(1).Info("packed pending GPU pods", "decision", d.String())
	if r.keep {
		r.mu.Lock()
		r.decisions = append(r.decisions, d)
		r.mu.Unlock()
	}
	return plan.NodeClaims, left, nil
}

// remaining is limits minus used, floored at zero.
func remaining(limits, used corev1.ResourceList) corev1.ResourceList {
	rem := corev1.ResourceList{}
	for name, limit := range limits {
		q := limit.DeepCopy()
		if u, ok := used[name]; ok {
			q.Sub(u)
		}
		if q.Sign() < 0 {
			q = resource.MustParse("0")
		}
		rem[name] = q
	}
	return rem
}
