package metrics

import (
	"strconv"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// LabelGPUCount is the accelerators of an instance type (offering metrics).
const LabelGPUCount = "gpu_count"

var offeringLabels = []string{LabelInstanceType, LabelCapacityType, LabelZone, LabelGPUName, LabelGPUCount}

// Offering gauges: karpenter-gpu's counterparts of Karpenter-AWS's
// karpenter_cloudprovider_instance_type_offering_price_estimate and
// _available (named apart so both can be scraped in one cluster), with the
// GPU model and count of the instance type and a price per GPU-hour.
var (
	// OfferingPriceEstimate is the hourly price of each offering.
	OfferingPriceEstimate = NewGaugeVec("offering", "price_estimate", "Hourly price karpenter-gpu uses for an offering (instance type, capacity type, zone) of its NodePools' instance types, NodeOverlay adjustments included; the lowest over NodePools.", offeringLabels...)
	// OfferingGPUPriceEstimate is the offering's price per accelerator-hour.
	OfferingGPUPriceEstimate = NewGaugeVec("offering", "gpu_price_estimate", "karpenter_gpu_offering_price_estimate divided by the instance type's physical accelerators (GPUs, Neuron devices, Gaudis): the hourly price of one accelerator of the offering.", offeringLabels...)
	// OfferingAvailable is 1 while karpenter-gpu may launch an offering.
	OfferingAvailable = NewGaugeVec("offering", "available", "1 when karpenter-gpu may launch the offering (instance type, capacity type, zone) for at least one of its NodePools, 0 when it is refused: the cloud reported insufficient capacity in the last minutes, a capacity reservation is used up, or the type is not offered in the zone.", offeringLabels...)
)

// offeringKey is the label set of the offering gauges.
type offeringKey struct{ instanceType, capacityType, zone, gpuName, gpuCount string }

func (k offeringKey) values() []string {
	return []string{k.instanceType, k.capacityType, k.zone, k.gpuName, k.gpuCount}
}

type offeringValue struct {
	price     float64
	gpus      int64
	available bool
}

// offerings collects the offerings of the instance types of every NodePool
// karpenter-gpu manages (nodeClassRef a GPUNodeClass, not being deleted):
// available if any NodePool may launch it, priced at the lowest price over
// NodePools (NodeOverlays may adjust it per NodePool).
func (p *pricer) offerings() map[offeringKey]*offeringValue {
	out := map[offeringKey]*offeringValue{}
	for name, np := range p.pools {
		if ref := np.Spec.Template.Spec.NodeClassRef; ref == nil || ref.Group != v1alpha1.Group || !np.DeletionTimestamp.IsZero() {
			continue
		}
		its := p.instanceTypes(name)
		if p.failed[name] {
			continue // not its offerings: the defaults the fleet metrics fell back to
		}
		for _, it := range its {
			gpuName, gpus := instanceTypeGPUs(it)
			for _, o := range it.Offerings {
				k := offeringKey{instanceType: it.Name, capacityType: o.CapacityType(), zone: o.Zone(), gpuName: gpuName, gpuCount: strconv.FormatInt(gpus, 10)}
				v, ok := out[k]
				if !ok {
					out[k] = &offeringValue{price: o.Price, gpus: gpus, available: o.Available}
					continue
				}
				v.price = min(v.price, o.Price)
				v.available = v.available || o.Available
			}
		}
	}
	return out
}

// instanceTypeGPUs is an instance type's GPU (or accelerator) model, as the
// fleet metrics name it, and its physical accelerator count.
func instanceTypeGPUs(it *karpcp.InstanceType) (string, int64) {
	single := func(key string) string {
		if r := it.Requirements.Get(key); r.Operator() == corev1.NodeSelectorOpIn && r.Len() == 1 {
			return r.Any()
		}
		return ""
	}
	name := lo.CoalesceOrEmpty(single(v1alpha1.LabelGPUName), single(v1alpha1.LabelAcceleratorName), NoGPU)
	count, _ := strconv.ParseInt(lo.CoalesceOrEmpty(single(v1alpha1.LabelGPUCount), single(v1alpha1.LabelAcceleratorCount), "0"), 10, 64)
	return name, count
}

// publishOfferings replaces the offering gauges' series with offers.
func publishOfferings(offers map[offeringKey]*offeringValue) {
	OfferingPriceEstimate.Reset()
	OfferingGPUPriceEstimate.Reset()
	OfferingAvailable.Reset()
	for k, v := range offers {
		OfferingPriceEstimate.WithLabelValues(k.values()...).Set(v.price)
		OfferingAvailable.WithLabelValues(k.values()...).Set(lo.Ternary(v.available, 1.0, 0.0))
		if v.gpus > 0 {
			OfferingGPUPriceEstimate.WithLabelValues(k.values()...).Set(v.price / float64(v.gpus))
		}
	}
}
