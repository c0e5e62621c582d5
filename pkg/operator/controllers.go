// Package operator wires karpenter-gpu into Karpenter core's operator: core's
// controllers with this project's provisioning loop swapped in, plus the
// provider's own controllers. The controller binary and the simulator both
// build their controller set here, so they run the same decisions.
package operator

import (
	"context"
	"fmt"

	"github.com/awslabs/operatorpkg/controller"
	"github.com/samber/lo"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	corecontrollers "sigs.k8s.io/karpenter/pkg/controllers"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeoverlay"
	coreprov "sigs.k8s.io/karpenter/pkg/controllers/provisioning"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/events"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gpustartup"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/gputaint"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/idlegpu"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nodeclass"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/nomination"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioning"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	gpumetrics "github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator/options"
)

// Policy selects whose decisions run.
type Policy string

const (
	// PolicyKarpenterGPU swaps in the GPU packing refinement (default).
	PolicyKarpenterGPU Policy = "karpenter-gpu"
	// PolicyStock runs Karpenter core's controllers untouched (for
	// comparisons in the simulator).
	PolicyStock Policy = "stock"
)

// Options are what NewControllers needs beyond core's.
type Options struct {
	Manager           manager.Manager
	Clock             clock.Clock
	KubeClient        client.Client
	Recorder          events.Recorder
	CloudProvider     karpcp.CloudProvider // decorated (metrics, overlay)
	Undecorated       karpcp.CloudProvider // before overlay
	Backend           gpucp.Backend
	Cluster           *state.Cluster
	InstanceTypeStore *nodeoverlay.InstanceTypeStore
	Policy            Policy
	// Refiner overrides the GPU packer under PolicyKarpenterGPU (the
	// simulator passes one that keeps its decisions); nil means
	// provisioning.NewPacker.
	Refiner provisioning.Refiner
	// DirectMinPods: see provisioning.Options.
	DirectMinPods int
	// NominatePods runs the nomination controller under
	// PolicyKarpenterGPU (pkg/controllers/nomination).
	NominatePods bool
	// ProvisioningRequestOptions: the flags' ProvisioningRequest settings
	// (see provisioningRequestController).
	options.ProvisioningRequestOptions
	// ProvisioningRequestsServed says the API serves ProvisioningRequests
	// when there is no Manager to ask (the simulator's in-memory API).
	ProvisioningRequestsServed bool
	// Eviction: the eviction-cost estimate's defaults (idlegpu.Options).
	Eviction evictioncost.Model
	// InterruptionQueue, when set, runs the interruption handler on it
	// (pkg/controllers/interruption); InterruptionUnavailable is where it
	// marks the offerings of spot-interrupted NodeClaims.
	InterruptionQueue       interruption.Queue
	InterruptionUnavailable interruption.Unavailable
}

// Controllers is the full controller set and handles the simulator drives.
type Controllers struct {
	All         []controller.Controller
	Provisioner *coreprov.Provisioner
	// Provisioning is nil under PolicyStock (core's singleton runs).
	Provisioning *provisioning.Controller
	// IdleGPU is nil under PolicyStock.
	IdleGPU *idlegpu.Controller
	// Nomination is nil under PolicyStock or without NominatePods.
	Nomination *nomination.Controller
}

// NewControllers returns core's controllers, with core's provisioning
// singleton and its triggers replaced by this project's under
// PolicyKarpenterGPU, followed by the provider's controllers.
func NewControllers(ctx context.Context, o Options) (*Controllers, error) {
	core := corecontrollers.NewControllers(ctx, o.Manager, o.Clock, o.KubeClient, o.Recorder, o.CloudProvider, o.Undecorated, o.Cluster, o.InstanceTypeStore, nil)
	out := &Controllers{}
	p, ok := findOne[*coreprov.Provisioner](core)
	if !ok {
		// A core upgrade changed how its provisioner is assembled; fail
		// loudly rather than run two provisioners or none.
		return nil, fmt.Errorf("karpenter core returned %d provisioners, expected exactly 1", len(lo.Filter(core, isType[*coreprov.Provisioner])))
	}
	out.Provisioner = p
	if o.Policy != PolicyStock {
		if err := provisioning.CheckFeatureGates(ctx); err != nil {
			return nil, err
		}
		for _, check := range []func(controller.Controller, int) bool{isType[*coreprov.PodController], isType[*coreprov.NodeController]} {
			if lo.CountBy(core, func(c controller.Controller) bool { return check(c, 0) }) != 1 {
				return nil, fmt.Errorf("karpenter core's provisioning triggers changed; refusing to start")
			}
		}
		core = lo.Reject(core, func(c controller.Controller, i int) bool {
			return isType[*coreprov.Provisioner](c, i) || isType[*coreprov.PodController](c, i) || isType[*coreprov.NodeController](c, i)
		})
		refiner := o.Refiner
		if refiner == nil {
			refiner = provisioning.NewPacker(provisioning.PackerOptions{KubeClient: o.KubeClient, CloudProvider: o.CloudProvider, Cluster: o.Cluster})
		}
		out.Provisioning = provisioning.NewController(provisioning.Options{Clock: o.Clock, KubeClient: o.KubeClient, Recorder: o.Recorder,
			Provisioner: p, Cluster: o.Cluster, Refiner: refiner, DirectMinPods: o.DirectMinPods})
		core = append(core, out.Provisioning, provisioning.NewPodTrigger(provisioning.TriggerOptions{Provisioner: out.Provisioning, Cluster: o.Cluster}),
			provisioning.NewNodeTrigger(provisioning.TriggerOptions{Provisioner: out.Provisioning}))
	}
	out.All = append(core, nodeclass.NewController(nodeclass.Options{KubeClient: o.KubeClient, Backend: o.Backend}), gputaint.NewController(gputaint.Options{KubeClient: o.KubeClient, Recorder: o.Recorder}),
		gpustartup.NewController(gpustartup.Options{Clock: o.Clock, KubeClient: o.KubeClient, Recorder: o.Recorder}),
		gpumetrics.NewController(gpumetrics.Options{Clock: o.Clock, KubeClient: o.KubeClient, CloudProvider: o.CloudProvider}))
	if o.Policy != PolicyStock {
		// Idle-GPU removal is karpenter-gpu behaviour; the stock policy is
		// Karpenter core alone, for comparison.
		out.IdleGPU = idlegpu.NewController(idlegpu.Options{Clock: o.Clock, KubeClient: o.KubeClient, Recorder: o.Recorder,
			CloudProvider: o.CloudProvider, Eviction: o.Eviction, Provisioner: p})
		out.All = append(out.All, out.IdleGPU)
		if o.NominatePods {
			// Karpenter core never tells kube-scheduler where it planned a
			// pod; the stock policy stays without it.
			out.Nomination = nomination.NewController(nomination.Options{KubeClient: o.KubeClient, Cluster: o.Cluster})
			out.All = append(out.All, out.Nomination)
		}
	}
	if o.InterruptionQueue != nil {
		out.All = append(out.All, interruption.NewController(interruption.Options{Clock: o.Clock, KubeClient: o.KubeClient, Recorder: o.Recorder,
			Queue: o.InterruptionQueue, Unavailable: o.InterruptionUnavailable}))
	}
	prc, err := provisioningRequestController(ctx, o)
	if err != nil {
		return nil, err
	}
	out.All = append(out.All, prc...)
	return out, nil
}

func isType[T controller.Controller](c controller.Controller, _ int) bool {
	_, ok := c.(T)
	return ok
}

func findOne[T controller.Controller](cs []controller.Controller) (T, bool) {
	matches := lo.Filter(cs, isType[T])
	if len(matches) != 1 {
		var zero T
		return zero, false
	}
	return matches[0].(T), true
}
