package provisioning

import (
	"context"
	"sync"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	karpstate "sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator/options"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
)

// Packer is the glue between the cluster and the pure GPU packer
// (pkg/packing): it gathers the inputs core's NewScheduler read for the same
// loop, so the packer sees the same NodePools, instance types (the
// provider's cached objects), daemonsets and limits, and plugs
// packing.Refine (Refiner) and packing.PackPending (DirectPacker) into the
// provisioning loop.
type Packer struct {
	kube    client.Client
	cp      karpcp.CloudProvider
	cluster *karpstate.Cluster

	mu        sync.Mutex
	decisions []packing.Decision
	keep      bool
}

// NewPacker returns the GPU packer for the provisioning loop. With
// keepDecisions every packing.Decision is retained for Decisions (the
// simulator's report); the controller keeps none.
func NewPacker(kube client.Client, cp karpcp.CloudProvider, cluster *karpstate.Cluster, keepDecisions bool) *Packer {
	return &Packer{kube: kube, cp: cp, cluster: cluster, keep: keepDecisions}
}

// Refine implements Refiner with packing.Refine. Any error leaves core's
// decision standing.
func (r *Packer) Refine(ctx context.Context, results scheduling.Results) scheduling.Results {
	opts, err := r.Inputs(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "gathering packing inputs; launching core's NodeClaims")
		return results
	}
	var pods []*corev1.Pod
	for _, nc := range results.NewNodeClaims {
		pods = append(pods, nc.Pods...)
	}
	if opts.Expected, err = r.Expected(ctx, opts.NodePools, pods); err != nil {
		log.FromContext(ctx).Error(err, "listing recent GPU pods; packing without expected arrivals")
	}
	out, d := packing.Refine(ctx, &results, opts)
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
func (r *Packer) Decisions() []packing.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]packing.Decision(nil), r.decisions...)
}

// Inputs are the packer's inputs for this loop, read as core's NewScheduler
// reads them: the dynamic, Ready, not deleting NodePools, their instance
// types, their remaining limits and the daemonset pods.
func (r *Packer) Inputs(ctx context.Context) (packing.Options, error) {
	nps, err := schedulingNodePools(ctx, r.kube, r.cp)
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

// Expected returns, per NodePool whose GPUNodeClass sets
// gpu.packing.arrivalWindow, the GPU pods (packing.Models) already bound to
// a node that were created within that window before the newest of the
// pods being packed: the arrivals the packer may plan room for (see
// packing.Options.Expected). The window is measured from the pending pods'
// own creation, not a clock, so a decision depends on the pods alone.
func (r *Packer) Expected(ctx context.Context, nps []*karpv1.NodePool, pending []*corev1.Pod) (map[string][]*corev1.Pod, error) {
	windows := map[string]time.Duration{}
	for _, np := range nps {
		ref := np.Spec.Template.Spec.NodeClassRef
		if ref == nil || ref.Group != v1alpha1.Group {
			continue
		}
		nc := &v1alpha1.GPUNodeClass{}
		if err := r.kube.Get(ctx, client.ObjectKey{Name: ref.Name}, nc); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if w := nc.ArrivalWindow(); w > 0 {
			windows[np.Name] = w
		}
	}
	if len(windows) == 0 || len(pending) == 0 {
		return nil, nil
	}
	newest := lo.MaxBy(pending, func(a, b *corev1.Pod) bool { return a.CreationTimestamp.After(b.CreationTimestamp.Time) }).CreationTimestamp.Time
	list := &corev1.PodList{}
	if err := r.kube.List(ctx, list); err != nil {
		return nil, err
	}
	out := map[string][]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || !packing.Models(p) || p.CreationTimestamp.After(newest) {
			continue
		}
		for pool, w := range windows {
			if !p.CreationTimestamp.Time.Before(newest.Add(-w)) {
				out[pool] = append(out[pool], p)
			}
		}
	}
	return out, nil
}

// DaemonSetPods are the daemonset pods as core's provisioner gives them to
// its scheduler (see daemonSetPods in core.go).
func (r *Packer) DaemonSetPods(ctx context.Context) ([]*corev1.Pod, error) {
	return daemonSetPods(ctx, r.kube, r.cluster)
}

// Models implements DirectPacker: see packing.Models.
func (r *Packer) Models(p *corev1.Pod) bool { return packing.Models(p) }

// PackPending implements DirectPacker with packing.PackPending: new
// NodeClaims for pending GPU pods that no existing node holds (the direct
// path, without core's Solve). The pods it cannot place are returned for
// core's scheduler.
func (r *Packer) PackPending(ctx context.Context, pods []*corev1.Pod) ([]*scheduling.NodeClaim, []*corev1.Pod, error) {
	start := time.Now()
	opts, err := r.Inputs(ctx)
	if err != nil {
		return nil, pods, err
	}
	if opts.Expected, err = r.Expected(ctx, opts.NodePools, pods); err != nil {
		log.FromContext(ctx).Error(err, "listing recent GPU pods; packing without expected arrivals")
	}
	plan := packing.PackPending(pods, opts)
	left := make([]*corev1.Pod, 0, len(plan.Left))
	for _, p := range pods {
		if _, ok := plan.Left[p]; ok {
			left = append(left, p)
		}
	}
	d := packing.Decision{PodsConsidered: len(pods), PodsRepacked: len(pods) - len(left), NodeClaimsAfter: len(plan.NodeClaims),
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
