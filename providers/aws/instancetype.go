package aws

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

// typeData is the catalog merged with what EC2 reports for the region.
type typeData struct {
	entries []catalog.Entry
	zones   map[string]map[string]bool // type -> zones EC2 offers it in
}

// typeBook merges the embedded catalog with DescribeInstanceTypes, so GPU
// types released after this build appear without a release, and drops types
// the region does not have.
type typeBook struct {
	b    *Backend
	base []catalog.Entry
	r    *refreshed[typeData]
}

func newTypeBook(b *Backend, base []catalog.Entry) *typeBook {
	return &typeBook{b: b, base: base, r: newRefreshed[typeData](b.clock, b.opts.InstanceTypeRefresh, b.opts.RefreshRetry)}
}

// current returns the entries and, when known, the zones of each type.
func (tb *typeBook) current(ctx context.Context) ([]catalog.Entry, map[string]map[string]bool) {
	if tb.b.opts.DisableInstanceTypeDiscovery {
		return tb.base, nil
	}
	v, ok, err := tb.r.get(ctx, func(ctx context.Context, _ typeData, _ bool) (typeData, error) { return tb.fetch(ctx) })
	if err != nil {
		log.FromContext(ctx).Error(err, "refreshing instance types; serving the last known ones")
	}
	if !ok {
		return tb.base, nil
	}
	return v.entries, v.zones
}

// entry returns the current entry of a type.
func (tb *typeBook) entry(ctx context.Context, name string) (catalog.Entry, bool) {
	entries, _ := tb.current(ctx)
	return lo.Find(entries, func(e catalog.Entry) bool { return e.Name == name })
}

// acceleratorNames returns the names of the devices exposing resource.
func (tb *typeBook) acceleratorNames(resource string) []string {
	entries := tb.base
	tb.r.mu.Lock()
	if tb.r.ok {
		entries = tb.r.value.entries
	}
	tb.r.mu.Unlock()
	names := lo.Uniq(lo.FilterMap(entries, func(e catalog.Entry, _ int) (string, bool) {
		return e.GPUName, e.AcceleratorResource == resource && e.GPUName != ""
	}))
	sort.Strings(names)
	return names
}

func (tb *typeBook) fetch(ctx context.Context) (typeData, error) {
	var infos []ec2types.InstanceTypeInfo
	pager := ec2.NewDescribeInstanceTypesPaginator(tb.b.ec2, &ec2.DescribeInstanceTypesInput{MaxResults: i32(100)})
	for pager.HasMorePages() {
		cctx, cancel := tb.b.call(ctx)
		page, err := pager.NextPage(cctx)
		cancel()
		if err != nil {
			return typeData{}, fmt.Errorf("describing instance types, %w", err)
		}
		infos = append(infos, page.InstanceTypes...)
	}
	zones := map[string]map[string]bool{}
	opager := ec2.NewDescribeInstanceTypeOfferingsPaginator(tb.b.ec2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone, MaxResults: i32(1000),
	})
	for opager.HasMorePages() {
		cctx, cancel := tb.b.call(ctx)
		page, err := opager.NextPage(cctx)
		cancel()
		if err != nil {
			return typeData{}, fmt.Errorf("describing instance type offerings, %w", err)
		}
		for _, o := range page.InstanceTypeOfferings {
			it := string(o.InstanceType)
			if zones[it] == nil {
				zones[it] = map[string]bool{}
			}
			zones[it][lo.FromPtr(o.Location)] = true
		}
	}
	if len(infos) == 0 {
		return typeData{}, fmt.Errorf("DescribeInstanceTypes returned no instance type")
	}
	return typeData{entries: mergeEntries(tb.base, infos), zones: zones}, nil
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
			if k := kubeArch(string(a)); k == "amd64" || k == "arm64" {
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
