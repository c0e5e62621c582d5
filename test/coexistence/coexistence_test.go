// Package coexistence runs karpenter-gpu in a cluster set up as one that
// already runs Karpenter for AWS: the API server serves Karpenter-AWS's CRDs
// (EC2NodeClass and its copies of the karpenter.sh NodePool, NodeClaim and
// NodeOverlay CRDs, from the pinned github.com/aws/karpenter-provider-aws
// module, see karpenteraws/go.mod) plus karpenter-gpu's own GPUNodeClass CRD,
// which is what the Helm chart installs with crds.karpenter.install=false (or
// when it finds the CRDs installed by another release).
package coexistence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/object"
	"github.com/awslabs/operatorpkg/status"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpv1alpha1 "sigs.k8s.io/karpenter/pkg/apis/v1alpha1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/chaos"
)

// karpenterAWSModule is the module whose CRDs the test installs; its version
// is pinned (and its content verified) by karpenteraws/go.mod and go.sum.
const karpenterAWSModule = "github.com/aws/karpenter-provider-aws"

// karpenterAWSCRDs reads Karpenter-AWS's CRDs from its module directory, as
// the go command resolves it for karpenteraws/go.mod (downloading it through
// the module proxy on first use and checking it against go.sum).
func karpenterAWSCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	// "go mod download" (not "go list -m", which leaves Dir empty while the
	// module is not in the module cache, as on a fresh machine) fetches the
	// version karpenteraws/go.mod selects and says where it is.
	cmd := exec.Command("go", "mod", "download", "-json", karpenterAWSModule)
	cmd.Dir = filepath.Join(chaos.RepoRoot(), "test", "coexistence", "karpenteraws")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	var mod struct{ Dir, Version, Error string }
	if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Error != "" || mod.Dir == "" {
		t.Fatalf("resolving %s (in %s): %v %v %s\n%s", karpenterAWSModule, cmd.Dir, err, jerr, mod.Error, out)
	}
	dir, version := mod.Dir, mod.Version
	t.Logf("Karpenter-AWS CRDs from %s %s", karpenterAWSModule, version)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range []string{"karpenter.k8s.aws_ec2nodeclasses.yaml", "karpenter.sh_nodepools.yaml", "karpenter.sh_nodeclaims.yaml", "karpenter.sh_nodeoverlays.yaml"} {
		raw, err := os.ReadFile(filepath.Join(dir, "pkg", "apis", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "karpenter.sh_nodepools.yaml" {
			checkAWSLabelNames(t, string(raw))
		}
		crds = append(crds, object.Unmarshal[apiextensionsv1.CustomResourceDefinition](raw))
	}
	return crds
}

// checkAWSLabelNames checks, against the rule Karpenter-AWS's NodePool CRD
// restricts its label domain with, that every karpenter.k8s.aws label
// karpenter-gpu registers is one of Karpenter-AWS's.
func checkAWSLabelNames(t *testing.T, nodePoolCRD string) {
	t.Helper()
	if !strings.Contains(nodePoolCRD, `label domain "karpenter.k8s.aws" is restricted`) {
		t.Fatal("Karpenter-AWS's NodePool CRD does not restrict karpenter.k8s.aws: not its copy of the karpenter.sh CRDs")
	}
	for _, key := range append(append([]string{}, v1alpha1.AWSLabels...), v1alpha1.AWSUnstatedLabels...) {
		if strings.HasPrefix(key, v1alpha1.AWSGroup+"/") && !strings.Contains(nodePoolCRD, `"`+key+`"`) {
			t.Errorf("%s is not among Karpenter-AWS's well-known labels", key)
		}
	}
}

func ec2NodeClass() *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.k8s.aws/v1",
		"kind":       "EC2NodeClass",
		"metadata":   map[string]any{"name": "default"},
		"spec": map[string]any{
			"role":                       "KarpenterNodeRole-coexistence",
			"amiSelectorTerms":           []any{map[string]any{"alias": "al2023@latest"}},
			"subnetSelectorTerms":        []any{map[string]any{"tags": map[string]any{"karpenter.sh/discovery": "coexistence"}}},
			"securityGroupSelectorTerms": []any{map[string]any{"tags": map[string]any{"karpenter.sh/discovery": "coexistence"}}},
		},
	}}
	return u
}

var ec2Ref = &karpv1.NodeClassReference{Group: v1alpha1.AWSGroup, Kind: "EC2NodeClass", Name: "default"}

// nodePool is the NodePool name whose nodes come from the node class ref,
// with the requirements reqs.
func nodePool(name string, ref *karpv1.NodeClassReference, reqs ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{NodeClassRef: ref, Requirements: reqs}}},
	}
}

// in is the requirement that the label key have one of values.
func in(key string, values ...string) karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{Key: key, Operator: corev1.NodeSelectorOpIn, Values: values}
}

// cpuNodePool is a Karpenter-AWS NodePool as its getting-started guide
// writes it, kept off GPU instances.
func cpuNodePool() *karpv1.NodePool {
	return nodePool("default", ec2Ref, in(v1alpha1.AWSLabelInstanceCategory, "c", "m", "r"), in(karpv1.CapacityTypeLabelKey, "on-demand"))
}

// awsGPUNodePool is the GPU NodePool Karpenter-AWS ran before the move.
func awsGPUNodePool() *karpv1.NodePool {
	np := nodePool("gpu", ec2Ref, in(v1alpha1.AWSLabelInstanceGPUManufacture, "nvidia"))
	np.Spec.Template.Spec.Taints = []corev1.Taint{{Key: v1alpha1.ResourceNVIDIAGPU, Effect: corev1.TaintEffectNoSchedule}}
	return np
}

// gpuNodePool selects GPU types with Karpenter-AWS's labels, as a NodePool
// moved from an EC2NodeClass keeps its requirements.
func gpuNodePool(name string, extra ...karpv1.NodeSelectorRequirementWithMinValues) *karpv1.NodePool {
	return nodePool(name, &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: "gpu"},
		append([]karpv1.NodeSelectorRequirementWithMinValues{
			in(v1alpha1.AWSLabelInstanceCategory, "g"), in(v1alpha1.AWSLabelInstanceGPUManufacture, "nvidia"), in(corev1.LabelArchStable, "amd64"),
		}, extra...)...)
}

// cpuPod can only be served by the Karpenter-AWS NodePool.
func cpuPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: lo.ToPtr(false),
			NodeSelector:                 map[string]string{karpv1.NodePoolLabelKey: "default"},
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}}},
		},
	}
}

// awsNodeClaim and awsNode are what Karpenter-AWS leaves in the cluster for
// one of its CPU nodes.
func awsNodeClaim() *karpv1.NodeClaim {
	return &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "cpu-x7k2p", Labels: map[string]string{
			karpv1.NodePoolLabelKey: "default", v1alpha1.AWSGroup + "/ec2nodeclass": "default",
		}},
		Spec: karpv1.NodeClaimSpec{
			NodeClassRef: ec2Ref,
			Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
				in(v1alpha1.AWSLabelInstanceCategory, "c", "m", "r"), in(karpv1.NodePoolLabelKey, "default"),
			},
		},
	}
}

func awsNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-1-23.us-west-2.compute.internal", Labels: map[string]string{
			karpv1.NodePoolLabelKey: "default", v1alpha1.AWSGroup + "/ec2nodeclass": "default", karpv1.NodeRegisteredLabelKey: "true",
			karpv1.CapacityTypeLabelKey: "on-demand", corev1.LabelInstanceTypeStable: "m7i.large", v1alpha1.AWSLabelInstanceCategory: "m",
		}},
		Spec: corev1.NodeSpec{ProviderID: "aws:///us-west-2a/i-0123456789abcdef0"},
	}
}

// claimWatch records every NodeClaim the API server ever sees created.
type claimWatch struct {
	mu      sync.Mutex
	created map[string]karpv1.NodeClaim
}

func watchClaims(t *testing.T, ctx context.Context, cp *chaos.ControlPlane) *claimWatch {
	t.Helper()
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &karpv1.NodeClaimList{})
	if err != nil {
		t.Fatal(err)
	}
	cw := &claimWatch{created: map[string]karpv1.NodeClaim{}}
	go func() {
		for ev := range w.ResultChan() {
			if nc, ok := ev.Object.(*karpv1.NodeClaim); ok && ev.Type == watch.Added {
				cw.mu.Lock()
				cw.created[nc.Name] = *nc
				cw.mu.Unlock()
			}
		}
	}()
	t.Cleanup(w.Stop)
	return cw
}

func (cw *claimWatch) all() []karpv1.NodeClaim {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return lo.Values(cw.created)
}

func eventually(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error %v)", what, lastErr)
}

// TestBesideKarpenterAWS follows the walk-through of the chart's README
// ("Beside Karpenter for AWS") with Karpenter-AWS's CRDs:
//   - its patches of Karpenter-AWS's NodePools (CPU NodePool kept off GPU
//     types, GPU NodePool fenced with a GPU limit of 0) are accepted by
//     Karpenter-AWS's CRDs, and its GPUNodeClass, NodePool and Pod by the API
//     server with strict field validation;
//   - a NodePool of each kind validates (Karpenter-AWS's CRD refuses an
//     unknown karpenter.k8s.aws key; karpenter-gpu's core validation refuses
//     an unknown karpenter-gpu.io key at run time);
//   - the README's pod, selecting karpenter.k8s.aws/instance-gpu-name=l4, is
//     provisioned by karpenter-gpu and runs on an L4 node that carries
//     Karpenter-AWS's labels and karpenter-gpu.io/gpunodeclass;
//   - Karpenter-AWS's NodePools, NodeClaim and Node are left exactly as they
//     were (same resourceVersion: no status, finalizer, taint or deletion),
//     and the pod only its CPU NodePool can serve gets no NodeClaim from
//     karpenter-gpu.
func TestBesideKarpenterAWS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	w := readWalkthrough(t)
	awsCRDs := karpenterAWSCRDs(t)
	cp := chaos.StartControlPlaneWithCRDs(t, append(awsCRDs, apis.OwnCRDs...))
	cp.StartScheduler(t)
	kube := cp.Kube
	claims := watchClaims(t, ctx, cp)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	strict := client.FieldValidation(metav1.FieldValidationStrict)

	// What Karpenter-AWS already runs.
	must(kube.Create(ctx, ec2NodeClass(), strict))
	cpuPool, awsGPUPool, awsClaim, node := cpuNodePool(), awsGPUNodePool(), awsNodeClaim(), awsNode()
	for _, o := range []client.Object{cpuPool, awsGPUPool, awsClaim, node} {
		must(kube.Create(ctx, o, strict))
	}
	// Walk-through step 3: the CPU NodePool is kept off GPU instance types.
	must(kube.Patch(ctx, cpuPool, client.RawPatch(types.JSONPatchType, patchArg(t, w.command(t, "kubectl patch nodepool default --type json")))))
	for _, key := range []string{v1alpha1.AWSLabelInstanceGPUCount, v1alpha1.AWSLabelAcceleratorCount} {
		if !lo.ContainsBy(cpuPool.Spec.Template.Spec.Requirements, func(r karpv1.NodeSelectorRequirementWithMinValues) bool {
			return r.Key == key && r.Operator == corev1.NodeSelectorOpDoesNotExist
		}) {
			t.Errorf("after the walk-through's patch, NodePool default lacks %s DoesNotExist: %v", key, cpuPool.Spec.Template.Spec.Requirements)
		}
	}
	// Step 5: Karpenter-AWS's GPU NodePool gets a GPU limit of 0.
	must(kube.Patch(ctx, awsGPUPool, client.RawPatch(types.MergePatchType, patchArg(t, w.command(t, "kubectl patch nodepool gpu --type merge")))))
	if q := awsGPUPool.Spec.Limits[v1alpha1.ResourceNVIDIAGPU]; !q.IsZero() || len(awsGPUPool.Spec.Limits) != 1 {
		t.Errorf("Karpenter-AWS's GPU NodePool limits after the walk-through's patch: %v", awsGPUPool.Spec.Limits)
	}
	// A NodeOverlay written for Karpenter-AWS's labels: core's NodeOverlay
	// controller in karpenter-gpu evaluates it against the instance types of
	// every NodePool, Karpenter-AWS's included.
	overlay := &karpv1alpha1.NodeOverlay{ObjectMeta: metav1.ObjectMeta{Name: "l4-discount"}, Spec: karpv1alpha1.NodeOverlaySpec{
		Requirements:    []karpv1alpha1.NodeSelectorRequirement{{Key: v1alpha1.AWSLabelInstanceGPUName, Operator: corev1.NodeSelectorOpIn, Values: []string{"l4"}}},
		PriceAdjustment: lo.ToPtr("-10%"),
	}}
	must(kube.Create(ctx, overlay, strict))
	// Karpenter-AWS's CRD refuses keys of its domain it does not know.
	bad := gpuNodePool("gpu-bad-aws-key", karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.AWSGroup + "/gpu-model", Operator: corev1.NodeSelectorOpExists})
	if err := kube.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), `label domain "karpenter.k8s.aws" is restricted`) {
		t.Fatalf("NodePool with an unknown karpenter.k8s.aws key: %v, want refused by Karpenter-AWS's CRD", err)
	}

	logs := &chaos.LogBuffer{}
	logs.TailOnFailure(t, 60)
	fleet := fake.NewFleet(fake.Options{Seed: 1})
	ctrl, err := chaos.StartController(ctx, chaos.ControllerOptions{
		Config: cp.Config, Fleet: fleet, RegistrationDelay: time.Second, Logger: logs.Logger(),
		Args: []string{"--batch-idle-duration=1s", "--batch-max-duration=3s", "--feature-gates=NodeOverlay=true"},
	})
	must(err)
	defer func() { _ = ctrl.Stop() }()

	// Step 5: the walk-through's GPUNodeClass and NodePool.
	must(kube.Create(ctx, w.object(t, "GPUNodeClass"), strict))
	gpuPool := w.object(t, "NodePool")
	must(kube.Create(ctx, gpuPool, strict))
	// Accepted by the API server (the karpenter.sh CRDs do not restrict
	// karpenter-gpu.io), refused by karpenter-gpu's runtime validation.
	unknown := gpuNodePool("gpu-bad-gpu-key", karpv1.NodeSelectorRequirementWithMinValues{Key: v1alpha1.Group + "/gpu-model", Operator: corev1.NodeSelectorOpExists})
	must(kube.Create(ctx, unknown))
	must(kube.Create(ctx, cpuPod()))

	condition := func(obj client.Object, cond string) (*status.Condition, error) {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return nil, err
		}
		c := obj.(status.Object).StatusConditions().Get(cond)
		if c == nil {
			return nil, fmt.Errorf("%s has no %s condition", obj.GetName(), cond)
		}
		return c, nil
	}
	// kubectl wait --for=condition=Ready gpunodeclass/gpu nodepool/gpu-karpenter-gpu
	w.command(t, "kubectl wait --for=condition=Ready gpunodeclass/gpu nodepool/"+gpuPool.GetName())
	eventually(t, ctx, 30*time.Second, "the walk-through's GPUNodeClass and NodePool Ready", func() (bool, error) {
		for _, obj := range []client.Object{&v1alpha1.GPUNodeClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}}, &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: gpuPool.GetName()}}} {
			c, err := condition(obj, status.ConditionReady)
			if err != nil || !c.IsTrue() {
				return false, fmt.Errorf("%T %s: %v %v", obj, obj.GetName(), c, err)
			}
		}
		return true, nil
	})
	eventually(t, ctx, 30*time.Second, "the NodeOverlay validated by karpenter-gpu", func() (bool, error) {
		c, err := condition(&karpv1alpha1.NodeOverlay{ObjectMeta: metav1.ObjectMeta{Name: overlay.Name}}, karpv1alpha1.ConditionTypeValidationSucceeded)
		if err != nil {
			return false, err
		}
		return c.IsTrue(), fmt.Errorf("%s: %s", c.Status, c.Message)
	})
	eventually(t, ctx, 30*time.Second, "NodePool gpu-bad-gpu-key refused by runtime validation", func() (bool, error) {
		v, err := condition(&karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu-bad-gpu-key"}}, karpv1.ConditionTypeValidationSucceeded)
		if err != nil {
			return false, err
		}
		return v.IsFalse() && strings.Contains(v.Message, v1alpha1.Group+"/gpu-model"), fmt.Errorf("%s: %s", v.Status, v.Message)
	})

	// Step 6: the walk-through's GPU pod, written for Karpenter-AWS.
	pod := w.object(t, "Pod")
	must(kube.Create(ctx, pod, strict))
	var gpuNode corev1.Node
	eventually(t, ctx, 90*time.Second, "the walk-through's GPU pod running on a karpenter-gpu node", func() (bool, error) {
		p := &corev1.Pod{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
			return false, err
		}
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning {
			return false, fmt.Errorf("pod phase %s on %q", p.Status.Phase, p.Spec.NodeName)
		}
		return true, kube.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, &gpuNode)
	})
	for key, want := range map[string]string{
		v1alpha1.AWSLabelInstanceGPUName: "l4", v1alpha1.AWSLabelInstanceGPUManufacture: "nvidia", v1alpha1.AWSLabelInstanceCategory: "g",
		v1alpha1.AWSLabelInstanceFamily: "g6", v1alpha1.LabelGPUName: "l4", karpv1.NodePoolLabelKey: gpuPool.GetName(), v1alpha1.LabelNodeClass: "gpu",
	} {
		if got := gpuNode.Labels[key]; got != want {
			t.Errorf("GPU node %s: label %s=%q, want %q", gpuNode.Name, key, got, want)
		}
	}
	if !strings.HasPrefix(gpuNode.Spec.ProviderID, fake.ProviderIDPrefix) {
		t.Errorf("GPU node %s has provider ID %q: not launched by karpenter-gpu", gpuNode.Name, gpuNode.Spec.ProviderID)
	}

	// Give karpenter-gpu's controllers more rounds (batching, disruption,
	// garbage collection, nodeclaim lifecycle) before checking what they
	// must not have touched.
	time.Sleep(10 * time.Second)
	for _, o := range []client.Object{cpuPool, awsGPUPool, awsClaim, node} {
		latest := o.DeepCopyObject().(client.Object)
		must(kube.Get(ctx, client.ObjectKeyFromObject(o), latest))
		if latest.GetResourceVersion() != o.GetResourceVersion() {
			t.Errorf("%T %s changed (resourceVersion %s -> %s): finalizers %v, deleted %v, annotations %v", o, o.GetName(),
				o.GetResourceVersion(), latest.GetResourceVersion(), latest.GetFinalizers(), latest.GetDeletionTimestamp(), latest.GetAnnotations())
		}
		if np, ok := latest.(*karpv1.NodePool); ok && (len(np.Status.Conditions) > 0 || len(np.Spec.Template.Spec.Taints) > len(o.(*karpv1.NodePool).Spec.Template.Spec.Taints)) {
			t.Errorf("EC2NodeClass NodePool %s touched: conditions %v, taints %v", np.Name, np.Status.Conditions, np.Spec.Template.Spec.Taints)
		}
	}
	var created []string
	for _, nc := range claims.all() {
		if nc.Name == awsClaim.Name {
			continue
		}
		created = append(created, nc.Name)
		if nc.Spec.NodeClassRef == nil || nc.Spec.NodeClassRef.Kind != "GPUNodeClass" || nc.Labels[karpv1.NodePoolLabelKey] != gpuPool.GetName() {
			t.Errorf("karpenter-gpu created NodeClaim %s for %v in NodePool %q", nc.Name, nc.Spec.NodeClassRef, nc.Labels[karpv1.NodePoolLabelKey])
		}
	}
	if len(created) != 1 {
		t.Errorf("NodeClaims created: %v, want the GPU pod's only", created)
	}
	if insts, err := fleet.List(ctx); err != nil || len(insts) != 1 {
		t.Errorf("fleet has %d instances (%v), want 1", len(insts), err)
	}
	// Karpenter-AWS's NodePools have no instance types in karpenter-gpu,
	// and are no error for its NodeOverlay controller.
	if l := logs.String(); strings.Contains(l, "listing instance types for nodepool") {
		i := strings.Index(l, "listing instance types for nodepool")
		t.Errorf("karpenter-gpu's NodeOverlay controller failed on a NodePool: %s", l[max(0, i-200):min(len(l), i+300)])
	}
	web := &corev1.Pod{}
	must(kube.Get(ctx, client.ObjectKeyFromObject(cpuPod()), web))
	if web.Spec.NodeName != "" {
		t.Errorf("CPU pod bound to %s", web.Spec.NodeName)
	}
}
