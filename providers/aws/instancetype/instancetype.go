// Package instancetype merges the embedded catalog with what EC2 reports for
// the region (DescribeInstanceTypes, DescribeInstanceTypeOfferings): GPU
// types released after this build appear, types the region lacks are
// dropped, and each type's zones are known.
package instancetype

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// typeData is the catalog merged with what EC2 reports for the region.
type typeData struct {
	entries []catalog.Entry
	zones   map[string]map[string]bool // type -> zones EC2 offers it in
}

// EC2API is the EC2 calls the provider makes.
type EC2API interface {
	ec2.DescribeInstanceTypesAPIClient
	ec2.DescribeInstanceTypeOfferingsAPIClient
}

// Options configure a Provider.
type Options struct {
	EC2 EC2API
	// Entries is the catalog (the base EC2's answers are merged into).
	Entries []catalog.Entry
	// DisableDiscovery keeps Entries as they are (no API call).
	DisableDiscovery bool
	Clock            clock.Clock
	// Refresh is how long EC2's answer is trusted; RefreshRetry how long a
	// failed refresh waits before the next.
	Refresh, RefreshRetry time.Duration
	CallTimeout           time.Duration
}

// Provider merges the catalog with DescribeInstanceTypes, so GPU types
// released after this build appear without a release, and drops types the
// region does not have.
type Provider struct {
	opts Options
	r    *awsutil.Refreshed[typeData]
}

// NewProvider returns a Provider; it makes no API call.
func NewProvider(o Options) *Provider {
	return &Provider{opts: o, r: awsutil.NewRefreshed[typeData](o.Clock, o.Refresh, o.RefreshRetry)}
}

// List returns the entries and, when known, the zones EC2 offers each type
// in (nil when unknown: every zone). A failed refresh serves the last known
// answer, or the catalog.
func (p *Provider) List(ctx context.Context) ([]catalog.Entry, map[string]map[string]bool) {
	if p.opts.DisableDiscovery {
		return p.opts.Entries, nil
	}
	v, ok, err := p.r.Get(ctx, func(ctx context.Context, _ typeData, _ bool) (typeData, error) { return p.fetch(ctx) })
	if err != nil {
		log.FromContext(ctx).Error(err, "refreshing instance types; serving the last known ones")
	}
	if !ok {
		return p.opts.Entries, nil
	}
	return v.entries, v.zones
}

// Get returns the current entry of a type.
func (p *Provider) Get(ctx context.Context, name string) (catalog.Entry, bool) {
	entries, _ := p.List(ctx)
	return lo.Find(entries, func(e catalog.Entry) bool { return e.Name == name })
}

// AcceleratorNames returns the names of the devices exposing resource among
// the last listed entries (the catalog before the first List).
func (p *Provider) AcceleratorNames(resource string) []string {
	entries := p.opts.Entries
	if v, ok := p.r.Peek(); ok {
		entries = v.entries
	}
	names := lo.Uniq(lo.FilterMap(entries, func(e catalog.Entry, _ int) (string, bool) {
		return e.GPUName, e.AcceleratorResource == resource && e.GPUName != ""
	}))
	sort.Strings(names)
	return names
}

func (p *Provider) fetch(ctx context.Context) (typeData, error) {
	var infos []ec2types.InstanceTypeInfo
	pager := ec2.NewDescribeInstanceTypesPaginator(p.opts.EC2, &ec2.DescribeInstanceTypesInput{MaxResults: aws.Int32(100)})
	if err := awsutil.EachPage(ctx, p.opts.CallTimeout, pager, func(page *ec2.DescribeInstanceTypesOutput) {
		infos = append(infos, page.InstanceTypes...)
	}); err != nil {
		return typeData{}, fmt.Errorf("describing instance types, %w", err)
	}
	zones := map[string]map[string]bool{}
	opager := ec2.NewDescribeInstanceTypeOfferingsPaginator(p.opts.EC2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone, MaxResults: aws.Int32(1000),
	})
	if err := awsutil.EachPage(ctx, p.opts.CallTimeout, opager, func(page *ec2.DescribeInstanceTypeOfferingsOutput) {
		for _, o := range page.InstanceTypeOfferings {
			it := string(o.InstanceType)
			if zones[it] == nil {
				zones[it] = map[string]bool{}
			}
			zones[it][lo.FromPtr(o.Location)] = true
		}
	}); err != nil {
		return typeData{}, fmt.Errorf("describing instance type offerings, %w", err)
	}
	if len(infos) == 0 {
		return typeData{}, fmt.Errorf("DescribeInstanceTypes returned no instance type")
	}
	return typeData{entries: mergeEntries(p.opts.Entries, infos), zones: zones}, nil
}

// mergeEntries combines the catalog with DescribeInstanceTypes. A type in
// both keeps the catalog's curated accelerator facts (EC2 has reported GPU
// counts of 0 and wrong memory sizes for real types) and takes EC2's values
// only for facts the catalog leaves unstated. A type only EC2 knows is added
// when it has an accelerator the catalog can expose. A catalog type EC2 does
// not report does not exist in this region and is dropped.
func mergeEntries(base []catalog.Entry, infos []ec2types.InstanceTypeInfo) []catalog.Entry {
	byName := lo.SliceToMap(infos, func(i ec2types.InstanceTypeInfo) (string, ec2types.InstanceTypeInfo) {
		return string(i.InstanceType), i
	})
	var out []catalog.Entry
	seen := map[string]bool{}
	for _, e := range base {
		info, ok := byName[e.Name]
		if !ok {
			continue
		}
		seen[e.Name] = true
		fromEC2 := entryFromEC2(info)
		e.VCPU = lo.Ternary(e.VCPU > 0, e.VCPU, fromEC2.VCPU)
		e.MemoryMiB = lo.Ternary(e.MemoryMiB > 0, e.MemoryMiB, fromEC2.MemoryMiB)
		e.MaxPods = lo.Ternary(e.MaxPods > 0, e.MaxPods, fromEC2.MaxPods)
		e.EFACount = lo.Ternary(e.EFACount > 0, e.EFACount, fromEC2.EFACount)
		e.LocalNVMeGiB = lo.Ternary(e.LocalNVMeGiB > 0, e.LocalNVMeGiB, fromEC2.LocalNVMeGiB)
		e.GPUMemoryMiB = lo.Ternary(e.GPUMemoryMiB > 0, e.GPUMemoryMiB, fromEC2.GPUMemoryMiB)
		e.Arch = lo.Ternary(e.Arch != "", e.Arch, fromEC2.Arch)
		out = append(out, e)
	}
	names := lo.Keys(byName)
	sort.Strings(names)
	for _, name := range names {
		if seen[name] {
			continue
		}
		if e := entryFromEC2(byName[name]); e.AcceleratorResource != "" {
			out = append(out, e)
		}
	}
	return out
}

// acceleratorResources maps a device manufacturer to its extended resource.
var acceleratorResources = map[string]string{
	"nvidia": v1alpha1.ResourceNVIDIAGPU,
	"amd":    v1alpha1.ResourceAMDGPU,
	"habana": v1alpha1.ResourceGaudi,
}

// entryFromEC2 converts DescribeInstanceTypes facts into an entry with no
// price (the Pricing API or the catalog prices it).
func entryFromEC2(info ec2types.InstanceTypeInfo) catalog.Entry {
	name := string(info.InstanceType)
	family, size, _ := strings.Cut(name, ".")
	e := catalog.Entry{Name: name, Family: family, Size: size}
	if info.ProcessorInfo != nil {
		for _, a := range info.ProcessorInfo.SupportedArchitectures {
			if k := awsutil.KubeArch(string(a)); k == "amd64" || k == "arm64" {
				e.Arch = k
				break
			}
		}
	}
	if info.VCpuInfo != nil {
		e.VCPU = int64(lo.FromPtr(info.VCpuInfo.DefaultVCpus))
	}
	if info.MemoryInfo != nil {
		e.MemoryMiB = lo.FromPtr(info.MemoryInfo.SizeInMiB)
	}
	if n := info.NetworkInfo; n != nil {
		enis, ips := int64(lo.FromPtr(n.MaximumNetworkInterfaces)), int64(lo.FromPtr(n.Ipv4AddressesPerInterface))
		if enis > 0 && ips > 1 {
			e.MaxPods = enis*(ips-1) + 2
		}
		if n.EfaInfo != nil {
			e.EFACount = int64(lo.FromPtr(n.EfaInfo.MaximumEfaInterfaces))
		}
	}
	if s := info.InstanceStorageInfo; s != nil {
		e.LocalNVMeGiB = lo.FromPtr(s.TotalSizeInGB)
	}
	if g := info.GpuInfo; g != nil && len(g.Gpus) > 0 {
		dev := g.Gpus[0]
		e.GPUManufacturer = strings.ToLower(lo.FromPtr(dev.Manufacturer))
		e.GPUName = kebab(lo.FromPtr(dev.Name))
		for _, d := range g.Gpus {
			e.GPUCount += int64(lo.FromPtr(d.Count))
		}
		if dev.MemoryInfo != nil {
			e.GPUMemoryMiB = int64(lo.FromPtr(dev.MemoryInfo.SizeInMiB))
		}
		// One kind of device per type; a GPU count of 0 (fractional GPUs)
		// leaves the type without a resource, which the catalog excludes.
		if r, ok := acceleratorResources[e.GPUManufacturer]; ok && len(g.Gpus) == 1 && e.GPUCount > 0 {
			e.AcceleratorResource, e.AcceleratorCount = r, e.GPUCount
		}
	} else if nn := info.NeuronInfo; nn != nil && len(nn.NeuronDevices) > 0 {
		dev := nn.NeuronDevices[0]
		e.GPUManufacturer = "aws"
		e.GPUName = kebab(lo.FromPtr(dev.Name))
		for _, d := range nn.NeuronDevices {
			e.GPUCount += int64(lo.FromPtr(d.Count))
		}
		if dev.MemoryInfo != nil {
			e.GPUMemoryMiB = int64(lo.FromPtr(dev.MemoryInfo.SizeInMiB))
		}
		if e.GPUCount > 0 {
			e.AcceleratorResource, e.AcceleratorCount = v1alpha1.ResourceNeuron, e.GPUCount
		}
	}
	return e
}

// kebab lower-cases a device name and replaces spaces ("Radeon Pro V520"
// becomes "radeon-pro-v520").
func kebab(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), "-")
}
