package simulation

// This file is the one place where the simulator adapts to pkg/packing. The
// packer's Refine takes its inputs explicitly (NodePools, instance types,
// daemonset pods, remaining limits) while provisioning.Controller wants a
// provisioning.Refiner; the controller binary needs the same adapter, so it
// belongs next to the operator wiring. Until it exists there, refinerFor
// builds it here from the same sources core's NewScheduler reads.

import (
	"context"
	"fmt"
	"sync"

	"github.com/awslabs/operatorpkg/status"
	"github.com/samber/lo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator/options"
	"sigs.k8s.io/karpenter/pkg/utils/daemonset"
	nodepoolutils "sigs.k8s.io/karpenter/pkg/utils/nodepool"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/packing/lowerbound"
)

// Policy selects whose provisioning decisions a simulation runs.
type Policy string

const (
	// PolicyKarpenterGPU is core's scheduler followed by the GPU packer
	// (and karpenter-gpu's own controllers).
	PolicyKarpenterGPU Policy = "karpenter-gpu"
	// PolicyStock is Karpenter core's decisions alone (refiner nil).
	PolicyStock Policy = "stock"
)

// ParsePolicy validates a --policy value.
func ParsePolicy(s string) (Policy, error) {
	switch Policy(s) {
	case PolicyKarpenterGPU, PolicyStock:
		return Policy(s), nil
	}
	return "", fmt.Errorf("unknown policy %q (want %s or %s)", s, PolicyKarpenterGPU, PolicyStock)
}

// packingRefiner adapts packing.Refine to provisioning.Refiner.
type packingRefiner struct {
	kube    client.Client
	cp      karpcp.CloudProvider
	cluster *state.Cluster

	mu        sync.Mutex
	decisions []packing.Decision
}

// refinerFor returns the provisioning refiner of a policy: nil (core's
// decisions unchanged) for stock.
func refinerFor(p Policy, kube client.Client, cp karpcp.CloudProvider, cluster *state.Cluster) (*packingRefiner, provisioning.Refiner) {
	if p == PolicyStock {
		return nil, nil
	}
	r := &packingRefiner{kube: kube, cp: cp, cluster: cluster}
	return r, r
}

func (r *packingRefiner) Refine(ctx context.Context, results scheduling.Results) scheduling.Results {
	opts, err := r.options(ctx)
	if err != nil {
		return results // when in doubt, core's decision stands
	}
	out, d := packing.Refine(ctx, &results, opts)
	r.mu.Lock()
	r.decisions = append(r.decisions, d)
	r.mu.Unlock()
	if out == nil {
		return results
	}
	return *out
}

// options gathers what core's NewScheduler saw for this loop: the managed,
// ready, dynamic NodePools, their instance types (the provider caches them,
// so these are the very objects core used), the daemonset pods and the
// capacity left under each pool's limits.
func (r *packingRefiner) options(ctx context.Context) (packing.Options, error) {
	nps, err := nodepoolutils.ListManaged(ctx, r.kube, r.cp)
	if err != nil {
		return packing.Options{}, err
	}
	nps = lo.Filter(nps, func(np *karpv1.NodePool, _ int) bool {
		return !nodepoolutils.IsStatic(np) && np.StatusConditions().IsTrue(status.ConditionReady) && np.DeletionTimestamp.IsZero()
	})
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
			used := r.cluster.NodePoolResourcesFor(np.Name)
			rem := corev1.ResourceList{}
			for name, limit := range np.Spec.Limits {
				q := limit.DeepCopy()
				if u, ok := used[name]; ok {
					q.Sub(u)
				}
				if q.Sign() < 0 {
					q = resource.MustParse("0")
				}
				rem[name] = q
			}
			opts.Remaining[np.Name] = rem
		}
	}
	dss := &appsv1.DaemonSetList{}
	if err := r.kube.List(ctx, dss); err != nil {
		return packing.Options{}, err
	}
	for i := range dss.Items {
		d := &dss.Items[i]
		p := r.cluster.GetDaemonSetPod(d)
		if p == nil {
			p = daemonset.PodForDaemonSet(d)
		}
		opts.DaemonSetPods = append(opts.DaemonSetPods, p)
	}
	return opts, nil
}

// lowerBound is the fluid LP bound ($/h) of shapes over types, from
// pkg/packing/lowerbound.
func lowerBound(shapes []lowerbound.Shape, types []lowerbound.Type, compatible func(shape, typ int) bool) (float64, []int) {
	res := lowerbound.Bound(shapes, types, lowerbound.Options{Compatible: compatible})
	return res.Cost, res.Unschedulable
}
