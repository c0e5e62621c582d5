package crdcheck

// Offline checks of the embedded CRDs with the API server's own libraries:
// static CRD validation (structural schema, CEL compilation and cost), and
// defaulting + OpenAPI + CEL validation of sample objects. They live in this
// module so the apiserver dependencies stay out of the product's build; the
// envtest suites remain the end-to-end check.

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
)

func internalCRD(t *testing.T, name string) *apiextensions.CustomResourceDefinition {
	t.Helper()
	for _, crd := range apis.CRDs {
		if crd.Name != name {
			continue
		}
		out := &apiextensions.CustomResourceDefinition{}
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, out, nil); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("CRD %s not embedded", name)
	return nil
}

func TestCRDsPassAPIServerValidation(t *testing.T) {
	for _, crd := range apis.CRDs {
		t.Run(crd.Name, func(t *testing.T) {
			in := internalCRD(t, crd.Name)
			// Validation of a CRD being created expects storedVersions to be
			// consistent with the storage version.
			for _, v := range in.Spec.Versions {
				if v.Storage {
					in.Status.StoredVersions = []string{v.Name}
				}
			}
			if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), in); len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
		})
	}
}

// validator applies the API server's defaulting and validation of one CRD.
type validator struct {
	structural *structuralschema.Structural
	schema     validation.SchemaValidator
	cel        *cel.Validator
}

func newValidator(t *testing.T, crdName string) *validator {
	t.Helper()
	crd := internalCRD(t, crdName)
	props := crd.Spec.Validation
	if props == nil {
		props = crd.Spec.Versions[0].Schema
	}
	s, err := structuralschema.NewStructural(props.OpenAPIV3Schema)
	if err != nil {
		t.Fatal(err)
	}
	sv, _, err := validation.NewSchemaValidator(props.OpenAPIV3Schema)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{structural: s, schema: sv, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}
}

// check defaults obj in place and returns its validation errors.
func (v *validator) check(obj map[string]any) field.ErrorList {
	defaulting.Default(obj, v.structural)
	errs := validation.ValidateCustomResource(nil, obj, v.schema)
	celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

func parse(t *testing.T, s string) map[string]any {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &obj); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	return obj
}

type tc struct {
	name string
	yaml string
	// wantErr is a substring of the expected error; empty means valid.
	wantErr string
}

func run(t *testing.T, v *validator, cases []tc) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := v.check(parse(t, c.yaml))
			switch {
			case c.wantErr == "" && len(errs) > 0:
				t.Errorf("unexpected errors: %v", errs.ToAggregate())
			case c.wantErr != "" && len(errs) == 0:
				t.Errorf("accepted, want error containing %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(errs.ToAggregate().Error(), c.wantErr):
				t.Errorf("errors %v do not contain %q", errs.ToAggregate(), c.wantErr)
			}
		})
	}
}

// nodeClass returns a GPUNodeClass whose spec is a valid base plus extra
// (YAML lines indented by two spaces under spec).
func nodeClass(extra string, drop ...string) string {
	base := map[string]string{
		"role":                       "  role: KarpenterNodeRole-test\n",
		"subnetSelectorTerms":        "  subnetSelectorTerms:\n  - tags: {karpenter.sh/discovery: test}\n",
		"securityGroupSelectorTerms": "  securityGroupSelectorTerms:\n  - tags: {karpenter.sh/discovery: test}\n",
	}
	var b strings.Builder
	b.WriteString("apiVersion: karpenter-gpu.io/v1alpha1\nkind: GPUNodeClass\nmetadata: {name: test}\nspec:\n")
	for _, k := range []string{"role", "subnetSelectorTerms", "securityGroupSelectorTerms"} {
		skip := strings.Contains(extra, "  "+k+":")
		for _, d := range drop {
			skip = skip || d == k
		}
		if !skip {
			b.WriteString(base[k])
		}
	}
	b.WriteString(extra)
	return b.String()
}

func TestGPUNodeClassDefaults(t *testing.T) {
	v := newValidator(t, "gpunodeclasses.karpenter-gpu.io")
	obj := parse(t, nodeClass(""))
	if errs := v.check(obj); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	got, _ := yaml.Marshal(obj["spec"])
	for _, want := range []string{
		"amiFamily: AL2023",
		"httpTokens: required",
		"httpPutResponseHopLimit: 1",
		"idleAfter: 10m",
		"startupTimeout: 15m",
		"migStrategy: none",
		"taint: true",
		"disruption: {}", // protection defaults to BreakEven in code (GPUWorkProtection)
		"placementGroup: Cluster",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("defaulted spec lacks %q:\n%s", want, got)
		}
	}
}

func TestGPUNodeClassValidation(t *testing.T) {
	v := newValidator(t, "gpunodeclasses.karpenter-gpu.io")
	run(t, v, []tc{
		{"minimal", nodeClass(""), ""},
		{"gang placement group None", nodeClass("  gang:\n    placementGroup: None\n"), ""},
		{"gang named placement group", nodeClass("  gang:\n    placementGroupName: team-pg\n"), ""},
		{"gang bad placement strategy", nodeClass("  gang:\n    placementGroup: Spread\n"), "placementGroup"},
		{"gang named group with None", nodeClass("  gang:\n    placementGroup: None\n    placementGroupName: team-pg\n"), "placementGroupName requires placementGroup Cluster"},
		{"gang group name with a space", nodeClass("  gang:\n    placementGroupName: team pg\n"), "placementGroupName"},
		{"gang empty group name", nodeClass("  gang:\n    placementGroupName: ''\n"), "placementGroupName"},
		{"instanceProfile instead of role", nodeClass("  instanceProfile: my-profile\n", "role"), ""},
		{"role and instanceProfile", nodeClass("  instanceProfile: my-profile\n"), "exactly one of role or instanceProfile must be set"},
		{"neither role nor instanceProfile", nodeClass("", "role"), "exactly one of role or instanceProfile must be set"},
		{"no subnet terms", nodeClass("", "subnetSelectorTerms"), "subnetSelectorTerms"},
		{"empty subnet terms", nodeClass("  subnetSelectorTerms: []\n"), "subnetSelectorTerms"},
		{"subnet id", nodeClass("  subnetSelectorTerms:\n  - id: subnet-0123abcd\n"), ""},
		{"subnet tags and id", nodeClass("  subnetSelectorTerms:\n  - id: subnet-0123abcd\n    tags: {a: b}\n"), "exactly one of tags or id"},
		{"subnet term empty", nodeClass("  subnetSelectorTerms:\n  - {}\n"), "exactly one of tags or id"},
		{"subnet empty tag value", nodeClass("  subnetSelectorTerms:\n  - tags: {a: ''}\n"), "empty tag keys or values"},
		{"sg by name", nodeClass("  securityGroupSelectorTerms:\n  - name: my-sg\n"), ""},
		{"sg name and id", nodeClass("  securityGroupSelectorTerms:\n  - name: my-sg\n    id: sg-0123\n"), "exactly one of tags, id or name"},
		{"sg term empty", nodeClass("  securityGroupSelectorTerms:\n  - {}\n"), "exactly one of tags, id or name"},
		{"bad amiFamily", nodeClass("  amiFamily: Ubuntu\n"), "amiFamily"},
		{"custom without terms", nodeClass("  amiFamily: Custom\n"), "amiSelectorTerms is required when amiFamily is Custom"},
		{"custom with id", nodeClass("  amiFamily: Custom\n  amiSelectorTerms:\n  - id: ami-0123abcd\n"), ""},
		{"custom with name and owner", nodeClass("  amiFamily: Custom\n  amiSelectorTerms:\n  - name: my-gpu-ami-*\n    owner: self\n"), ""},
		{"alias al2023", nodeClass("  amiSelectorTerms:\n  - alias: al2023@latest\n"), ""},
		{"alias bottlerocket", nodeClass("  amiFamily: Bottlerocket\n  amiSelectorTerms:\n  - alias: bottlerocket@v1.30.0\n"), ""},
		{"alias family mismatch", nodeClass("  amiSelectorTerms:\n  - alias: bottlerocket@latest\n"), "alias must match amiFamily"},
		{"alias with custom", nodeClass("  amiFamily: Custom\n  amiSelectorTerms:\n  - alias: al2023@latest\n"), "alias must match amiFamily"},
		{"alias bad format", nodeClass("  amiSelectorTerms:\n  - alias: ubuntu@latest\n"), "alias"},
		{"alias with name", nodeClass("  amiSelectorTerms:\n  - alias: al2023@latest\n    name: foo\n"), "'alias' cannot be combined"},
		{"alias with second term", nodeClass("  amiSelectorTerms:\n  - alias: al2023@latest\n  - id: ami-0123\n"), "a term with an alias must be the only amiSelectorTerm"},
		{"id with owner", nodeClass("  amiSelectorTerms:\n  - id: ami-0123\n    owner: self\n"), "'id' cannot be combined"},
		{"owner only", nodeClass("  amiSelectorTerms:\n  - owner: self\n"), "at least one of alias, id, name or tags"},
		{"user tags", nodeClass("  tags:\n    team: ml\n    Name: gpu-node\n"), ""},
		{"cluster tag", nodeClass("  tags:\n    kubernetes.io/cluster/prod: owned\n"), "tag keys starting with 'kubernetes.io/cluster/'"},
		{"karpenter.sh tag", nodeClass("  tags:\n    karpenter.sh/nodepool: x\n"), "tag keys starting with 'karpenter.sh/'"},
		{"karpenter-gpu.io tag", nodeClass("  tags:\n    karpenter-gpu.io/foo: x\n"), "tag keys starting with 'karpenter-gpu.io/'"},
		{"karpenter.k8s.aws tag", nodeClass("  tags:\n    karpenter.k8s.aws/ec2nodeclass: default\n"), "tag keys starting with 'karpenter.k8s.aws/'"},
		{"EKS cluster-name tag", nodeClass("  tags:\n    eks:eks-cluster-name: prod\n"), "the tag key 'eks:eks-cluster-name' belongs to Karpenter for AWS"},
		{"root volume", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    rootVolume: true\n    ebs: {volumeSize: 500Gi, volumeType: gp3, iops: 6000, throughput: 500, encrypted: true}\n"), ""},
		{"two root volumes", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    rootVolume: true\n    ebs: {volumeSize: 500Gi}\n  - deviceName: /dev/xvdb\n    rootVolume: true\n    ebs: {volumeSize: 500Gi}\n"), "at most one blockDeviceMapping can set rootVolume"},
		{"bad volume type", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    ebs: {volumeSize: 500Gi, volumeType: gp4}\n"), "volumeType"},
		{"bad volume size", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    ebs: {volumeSize: 500Mi}\n"), "volumeSize"},
		{"throughput on io2", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    ebs: {volumeSize: 500Gi, volumeType: io2, throughput: 200}\n"), "throughput is only supported for gp3"},
		{"iops on st1", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    ebs: {volumeSize: 500Gi, volumeType: st1, iops: 200}\n"), "iops is only supported"},
		{"no size nor snapshot", nodeClass("  blockDeviceMappings:\n  - deviceName: /dev/xvda\n    ebs: {volumeType: gp3}\n"), "volumeSize or snapshotID must be set"},
		{"kubelet", nodeClass("  kubelet:\n    maxPods: 110\n    systemReserved: {cpu: 100m, memory: 100Mi}\n    kubeReserved: {ephemeral-storage: 1Gi, pid: '100'}\n    evictionHard: {memory.available: 5%}\n    clusterDNS: [10.100.0.10]\n"), ""},
		{"kubelet bad reserved key", nodeClass("  kubelet:\n    systemReserved: {nvidia.com/gpu: '1'}\n"), "valid keys for systemReserved"},
		{"kubelet bad kubeReserved key", nodeClass("  kubelet:\n    kubeReserved: {gpu: '1'}\n"), "valid keys for kubeReserved"},
		{"kubelet negative reserved", nodeClass("  kubelet:\n    kubeReserved: {cpu: '-1'}\n"), "kubeReserved values cannot be negative"},
		{"kubelet bad eviction signal", nodeClass("  kubelet:\n    evictionHard: {gpu.available: 5%}\n"), "valid keys for evictionHard"},
		{"metadata optional", nodeClass("  metadataOptions: {httpTokens: optional, httpPutResponseHopLimit: 2}\n"), ""},
		{"metadata bad tokens", nodeClass("  metadataOptions: {httpTokens: maybe}\n"), "httpTokens"},
		{"metadata hop limit", nodeClass("  metadataOptions: {httpPutResponseHopLimit: 65}\n"), "httpPutResponseHopLimit"},
		{"gpu full", nodeClass("  gpu:\n    taint: false\n    timeSlicing: {replicas: 4}\n    migStrategy: mixed\n    idleAfter: 1h30m\n    startupTimeout: 20m\n    disruption: {protectRunningGPUPods: false}\n"), ""},
		{"gpu idleAfter Never", nodeClass("  gpu:\n    idleAfter: Never\n"), ""},
		{"gpu protection break-even", nodeClass("  gpu:\n    disruption: {protection: BreakEven, breakEvenPercent: 300}\n"), ""},
		{"gpu protection unknown", nodeClass("  gpu:\n    disruption: {protection: Sometimes}\n"), "protection"},
		{"gpu protection and deprecated both", nodeClass("  gpu:\n    disruption: {protection: Always, protectRunningGPUPods: true}\n"), "not both"},
		{"gpu breakEvenPercent negative", nodeClass("  gpu:\n    disruption: {breakEvenPercent: -1}\n"), "breakEvenPercent"},
		{"gpu evictionCostPerPod", nodeClass("  gpu:\n    disruption: {evictionCostPerPod: '0.25'}\n"), ""},
		{"gpu evictionCostPerPod negative", nodeClass("  gpu:\n    disruption: {evictionCostPerPod: '-1'}\n"), "evictionCostPerPod"},
		{"gpu evictionCostPerPod exponent", nodeClass("  gpu:\n    disruption: {evictionCostPerPod: '1e3'}\n"), "evictionCostPerPod"},
		{"gpu idleAfter bad", nodeClass("  gpu:\n    idleAfter: 10 minutes\n"), "idleAfter"},
		{"gpu startupTimeout Never", nodeClass("  gpu:\n    startupTimeout: Never\n"), "startupTimeout"},
		{"gpu bad mig", nodeClass("  gpu:\n    migStrategy: all\n"), "migStrategy"},
		{"gpu replicas 0", nodeClass("  gpu:\n    timeSlicing: {replicas: 0}\n"), "replicas"},
		{"gpu replicas 65", nodeClass("  gpu:\n    timeSlicing: {replicas: 65}\n"), "replicas"},
	})
}

func nodePool(labels, requirementKey string) string {
	return `apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: gpu}
spec:
  template:
    metadata:
      labels: {` + labels + `}
    spec:
      nodeClassRef: {group: karpenter-gpu.io, kind: GPUNodeClass, name: default}
      requirements:
      - {key: ` + requirementKey + `, operator: Exists}
`
}

// TestCoreNodePoolLeavesProviderDomainsToRuntimeValidation pins down what
// the karpenter.sh CRDs (core's, unpatched; Karpenter-AWS's copies add only a
// karpenter.k8s.aws rule) do and do not check: they restrict karpenter.sh and
// kubernetes.io/hostname, and accept any karpenter-gpu.io key, which core's runtime
// NodePool validation then judges (pkg/apis/v1alpha1
// TestNodePoolRuntimeValidationRestrictsDomains).
func TestCoreNodePoolLeavesProviderDomainsToRuntimeValidation(t *testing.T) {
	v := newValidator(t, "nodepools.karpenter.sh")
	run(t, v, []tc{
		{"karpenter-gpu.io well-known requirement", nodePool("", "karpenter-gpu.io/gpu-name"), ""},
		{"karpenter-gpu.io unknown requirement", nodePool("", "karpenter-gpu.io/gpu-model"), ""},
		{"karpenter-gpu.io label", nodePool("karpenter-gpu.io/team: ml", "kubernetes.io/arch"), ""},
		{"karpenter.k8s.aws requirement", nodePool("", "karpenter.k8s.aws/instance-gpu-name"), ""},
		{"karpenter.sh restricted", nodePool("", "karpenter.sh/foo"), `label domain "karpenter.sh" is restricted`},
		{"kubernetes.io/hostname restricted", nodePool("", "kubernetes.io/hostname"), `label "kubernetes.io/hostname" is restricted`},
	})
}

func TestCoreNodeClaimAcceptsNodeClassLabel(t *testing.T) {
	v := newValidator(t, "nodeclaims.karpenter.sh")
	claim := func(key string) string {
		return `apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata: {name: gpu-abc}
spec:
  nodeClassRef: {group: karpenter-gpu.io, kind: GPUNodeClass, name: default}
  requirements:
  - {key: ` + key + `, operator: In, values: [x]}
`
	}
	run(t, v, []tc{
		{"nodeclass label", claim("karpenter-gpu.io/gpunodeclass"), ""},
		{"well-known", claim("karpenter-gpu.io/gpu-manufacturer"), ""},
		{"karpenter.sh restricted", claim("karpenter.sh/foo"), `label domain "karpenter.sh" is restricted`},
	})
}
