// Package ami resolves a GPUNodeClass's images: an alias (or none) through
// the EKS public SSM parameters of the NVIDIA, Neuron and standard
// variants, amiSelectorTerms through DescribeImages. It also decides which
// of a node class's images an instance type launches with (For).
package ami

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

// Image variants of the EKS-optimized images. Each resolved image carries
// requirements that decide which instance types launch with it: the NVIDIA
// variant only for NVIDIA GPUs (not, as upstream does, for any GPU), the
// Neuron variant for Inferentia/Trainium and the standard one for types
// without an accelerator.
const (
	variantNVIDIA   = "nvidia"
	variantNeuron   = "neuron"
	variantStandard = "standard"
)

type imageVariant struct {
	variant string
	arch    string // kubernetes arch: amd64, arm64
}

var imageVariants = []imageVariant{
	{variantNVIDIA, "amd64"}, {variantNVIDIA, "arm64"},
	{variantNeuron, "amd64"},
	{variantStandard, "amd64"}, {variantStandard, "arm64"},
}

func ec2Arch(arch string) string { return lo.Ternary(arch == "amd64", "x86_64", arch) }

// ssmParameter returns the public SSM parameter of an EKS image, or "" when
// the family has no such variant.
func ssmParameter(family, k8sVersion, version string, v imageVariant) string {
	switch family {
	case v1alpha1.AMIFamilyAL2023:
		if v.variant == variantNeuron && v.arch != "amd64" {
			return ""
		}
		if version == "latest" {
			return fmt.Sprintf("/aws/service/eks/optimized-ami/%s/amazon-linux-2023/%s/%s/recommended/image_id", k8sVersion, ec2Arch(v.arch), v.variant)
		}
		return fmt.Sprintf("/aws/service/eks/optimized-ami/%s/amazon-linux-2023/%s/%s/amazon-eks-node-al2023-%s-%s-%s-%s/image_id",
			k8sVersion, ec2Arch(v.arch), v.variant, ec2Arch(v.arch), v.variant, k8sVersion, version)
	case v1alpha1.AMIFamilyBottlerocket:
		suffix := map[string]string{variantNVIDIA: "-nvidia", variantStandard: ""}
		s, ok := suffix[v.variant]
		if !ok {
			return ""
		}
		return fmt.Sprintf("/aws/service/bottlerocket/aws-k8s-%s%s/%s/%s/image_id", k8sVersion, s, ec2Arch(v.arch), strings.TrimPrefix(version, "v"))
	}
	return ""
}

// Options configure a Provider.
type Options struct {
	EC2 ec2.DescribeImagesAPIClient
	SSM SSMAPI
	// KubernetesVersion ("1.33") names the EKS image SSM parameters; empty
	// leaves aliases unresolvable.
	KubernetesVersion string
	// InstanceTypes names the Neuron devices the Neuron image is for.
	InstanceTypes InstanceTypes
	Clock         clock.Clock
	// Refresh is how long an SSM parameter is trusted; RefreshRetry how
	// long a failed read waits before the next.
	Refresh, RefreshRetry time.Duration
	CallTimeout           time.Duration
}

// SSMAPI is the SSM call the provider makes.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// InstanceTypes is what the provider asks of the instance types.
type InstanceTypes interface {
	// AcceleratorNames returns the names of the devices exposing resource.
	AcceleratorNames(resource string) []string
}

// Provider resolves images; SSM parameter values are cached and shared by
// node classes, and what DescribeImages said about an image (its root
// device) is remembered for launch templates.
type Provider struct {
	opts Options

	mu     sync.Mutex
	params map[string]*awsutil.Refreshed[string]
	amis   map[string]detail
}

// NewProvider returns a Provider.
func NewProvider(o Options) *Provider {
	return &Provider{opts: o, params: map[string]*awsutil.Refreshed[string]{}, amis: map[string]detail{}}
}

// parameter returns an SSM parameter's value; found is false when it does
// not exist.
func (p *Provider) parameter(ctx context.Context, name string) (value string, found bool, err error) {
	p.mu.Lock()
	r, ok := p.params[name]
	if !ok {
		r = awsutil.NewRefreshed[string](p.opts.Clock, p.opts.Refresh, p.opts.RefreshRetry)
		p.params[name] = r
	}
	p.mu.Unlock()
	v, ok, err := r.Get(ctx, func(ctx context.Context, _ string, _ bool) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
		defer cancel()
		out, err := p.opts.SSM.GetParameter(cctx, &ssm.GetParameterInput{Name: aws.String(name)})
		if awsutil.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("getting SSM parameter %s, %w", name, err)
		}
		return lo.FromPtr(out.Parameter.Value), nil
	})
	if err != nil && !ok {
		return "", false, err
	}
	return v, v != "", nil
}

// List returns the node class's images with their requirements, or a
// reason why none was found; an error means an API could not be asked.
func (p *Provider) List(ctx context.Context, nc *v1alpha1.GPUNodeClass) ([]v1alpha1.AMI, string, error) {
	terms := nc.Spec.AMISelectorTerms
	family := nc.AMIFamilyOrDefault()
	alias := ""
	if len(terms) == 0 {
		if family == v1alpha1.AMIFamilyCustom {
			return nil, "amiFamily Custom requires amiSelectorTerms", nil
		}
		alias = strings.ToLower(family) + "@latest"
	} else if terms[0].Alias != "" {
		alias = terms[0].Alias
	}
	if alias != "" {
		return p.resolveAlias(ctx, family, alias)
	}
	return p.resolveSelectedImages(ctx, terms)
}

func (p *Provider) resolveAlias(ctx context.Context, family, alias string) ([]v1alpha1.AMI, string, error) {
	_, version, _ := strings.Cut(alias, "@")
	if p.opts.KubernetesVersion == "" {
		return nil, "the Kubernetes version is unknown, so the EKS image parameters cannot be named; set amiSelectorTerms by id, name or tags", nil
	}
	type found struct {
		v  imageVariant
		id string
	}
	var images []found
	for _, v := range imageVariants {
		name := ssmParameter(family, p.opts.KubernetesVersion, version, v)
		if name == "" {
			continue
		}
		id, ok, err := p.parameter(ctx, name)
		if err != nil {
			return nil, "", err
		}
		if ok {
			images = append(images, found{v, id})
		}
	}
	if len(images) == 0 {
		return nil, fmt.Sprintf("no %s image is published for Kubernetes %s (alias %s)", family, p.opts.KubernetesVersion, alias), nil
	}
	details, err := p.describeImages(ctx, &ec2.DescribeImagesInput{ImageIds: lo.Uniq(lo.Map(images, func(f found, _ int) string { return f.id }))})
	if err != nil && !awsutil.IsNotFound(err) {
		return nil, "", err
	}
	byID := lo.SliceToMap(details, func(d detail) (string, detail) { return d.ID, d })
	neuronNames := p.opts.InstanceTypes.AcceleratorNames(v1alpha1.ResourceNeuron)
	var out []v1alpha1.AMI
	for _, f := range images {
		d, ok := byID[f.id]
		if !ok {
			d = detail{ID: f.id, Arch: f.v.arch}
		}
		d.Arch = f.v.arch
		p.remember(d)
		reqs := []corev1.NodeSelectorRequirement{{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{f.v.arch}}}
		switch f.v.variant {
		case variantNVIDIA:
			reqs = append(reqs, corev1.NodeSelectorRequirement{Key: v1alpha1.LabelGPUManufacturer, Operator: corev1.NodeSelectorOpIn, Values: []string{"nvidia"}})
		case variantNeuron:
			if len(neuronNames) == 0 {
				continue
			}
			reqs = append(reqs, corev1.NodeSelectorRequirement{Key: v1alpha1.LabelAcceleratorName, Operator: corev1.NodeSelectorOpIn, Values: neuronNames})
		case variantStandard:
			reqs = append(reqs,
				corev1.NodeSelectorRequirement{Key: v1alpha1.LabelGPUCount, Operator: corev1.NodeSelectorOpDoesNotExist},
				corev1.NodeSelectorRequirement{Key: v1alpha1.LabelAcceleratorCount, Operator: corev1.NodeSelectorOpDoesNotExist})
		}
		out = append(out, v1alpha1.AMI{ID: f.id, Name: d.Name, Requirements: reqs})
	}
	return out, "", nil
}

// resolveSelectedImages resolves id/name/tags terms: the newest image per
// architecture wins.
func (p *Provider) resolveSelectedImages(ctx context.Context, terms []v1alpha1.AMISelectorTerm) ([]v1alpha1.AMI, string, error) {
	var all []detailWithDate
	for _, t := range terms {
		in := &ec2.DescribeImagesInput{}
		switch {
		case t.ID != "":
			in.ImageIds = []string{t.ID}
		default:
			if t.Name != "" {
				in.Filters = append(in.Filters, ec2types.Filter{Name: aws.String("name"), Values: []string{t.Name}})
			}
			in.Filters = append(in.Filters, awsutil.TagFilters(t.Tags)...)
			in.Owners = lo.Ternary(t.Owner != "", []string{t.Owner}, []string{"self", "amazon"})
		}
		imgs, err := p.describeImagesWithDate(ctx, in)
		if err != nil && !awsutil.IsNotFound(err) {
			return nil, "", err
		}
		all = append(all, imgs...)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].created != all[j].created {
			return all[i].created > all[j].created
		}
		return all[i].ID < all[j].ID
	})
	seen := map[string]bool{}
	var out []v1alpha1.AMI
	for _, d := range all {
		if seen[d.Arch] || (d.Arch != "amd64" && d.Arch != "arm64") {
			continue
		}
		seen[d.Arch] = true
		p.remember(d.detail)
		out = append(out, v1alpha1.AMI{ID: d.ID, Name: d.Name, Requirements: []corev1.NodeSelectorRequirement{
			{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{d.Arch}},
		}})
	}
	if len(out) == 0 {
		return nil, "no available image matches amiSelectorTerms", nil
	}
	return out, "", nil
}

type detailWithDate struct {
	detail
	created string
}

func (p *Provider) describeImages(ctx context.Context, in *ec2.DescribeImagesInput) ([]detail, error) {
	imgs, err := p.describeImagesWithDate(ctx, in)
	return lo.Map(imgs, func(d detailWithDate, _ int) detail { return d.detail }), err
}

func (p *Provider) describeImagesWithDate(ctx context.Context, in *ec2.DescribeImagesInput) ([]detailWithDate, error) {
	var out []detailWithDate
	if len(in.ImageIds) == 0 {
		in.MaxResults = aws.Int32(1000)
	}
	pager := ec2.NewDescribeImagesPaginator(p.opts.EC2, in)
	if err := awsutil.EachPage(ctx, p.opts.CallTimeout, pager, func(page *ec2.DescribeImagesOutput) {
		for _, img := range page.Images {
			if img.State != "" && img.State != ec2types.ImageStateAvailable {
				continue
			}
			out = append(out, detailWithDate{
				detail:  detail{ID: lo.FromPtr(img.ImageId), Name: lo.FromPtr(img.Name), Arch: awsutil.KubeArch(string(img.Architecture)), RootDevice: lo.FromPtr(img.RootDeviceName)},
				created: lo.FromPtr(img.CreationDate),
			})
		}
	}); err != nil {
		return out, fmt.Errorf("describing images, %w", err)
	}
	return out, nil
}

func (p *Provider) remember(d detail) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.amis[d.ID]; ok && d.RootDevice == "" {
		d.RootDevice = old.RootDevice
	}
	p.amis[d.ID] = d
}

// RootDevice returns the root device name DescribeImages reported for an
// image, or "" when it is unknown.
func (p *Provider) RootDevice(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.amis[id].RootDevice
}

// entryLabels are the labels of an instance type that image requirements
// may refer to.
func entryLabels(e *catalog.Entry) map[string]string {
	labels := map[string]string{corev1.LabelArchStable: e.Arch, corev1.LabelInstanceTypeStable: e.Name, v1alpha1.LabelInstanceFamily: e.Family}
	switch e.AcceleratorResource {
	case v1alpha1.ResourceNVIDIAGPU, v1alpha1.ResourceAMDGPU:
		labels[v1alpha1.LabelGPUManufacturer] = e.GPUManufacturer
		labels[v1alpha1.LabelGPUName] = e.GPUName
		labels[v1alpha1.LabelGPUCount] = strconv.FormatInt(e.GPUCount, 10)
		labels[v1alpha1.LabelGPUMemory] = strconv.FormatInt(e.GPUMemoryMiB, 10)
	case "":
	default:
		labels[v1alpha1.LabelAcceleratorName] = e.GPUName
		labels[v1alpha1.LabelAcceleratorCount] = strconv.FormatInt(e.AcceleratorCount, 10)
	}
	return labels
}

// matches evaluates node selector requirements against labels.
func matches(reqs []corev1.NodeSelectorRequirement, labels map[string]string) bool {
	for _, r := range reqs {
		v, ok := labels[r.Key]
		switch r.Operator {
		case corev1.NodeSelectorOpIn:
			if !ok || !lo.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if ok && lo.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpExists:
			if !ok {
				return false
			}
		case corev1.NodeSelectorOpDoesNotExist:
			if ok {
				return false
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			n, err1 := strconv.ParseInt(v, 10, 64)
			if !ok || len(r.Values) != 1 || err1 != nil {
				return false
			}
			bound, err2 := strconv.ParseInt(r.Values[0], 10, 64)
			if err2 != nil || (r.Operator == corev1.NodeSelectorOpGt && n <= bound) || (r.Operator == corev1.NodeSelectorOpLt && n >= bound) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// For returns the first of the node class's images an instance type can
// launch with.
func For(nc *v1alpha1.GPUNodeClass, e *catalog.Entry) (v1alpha1.AMI, bool) {
	labels := entryLabels(e)
	return lo.Find(nc.Status.AMIs, func(a v1alpha1.AMI) bool { return matches(a.Requirements, labels) })
}

// detail is what DescribeImages said about an image beyond the status.
type detail struct {
	ID, Name, Arch, RootDevice string
}
