// Package examples keeps examples/*.yaml and the install path of
// charts/karpenter-gpu/README.md from rotting: every example is created on a
// real kube-apiserver (envtest, bin/k8s) with the project's CRDs and strict
// field validation, the NodePool / GPUNodeClass pairs and the NVIDIA device
// plugin configuration are checked against each other, and the IAM policy
// and the rendered ServiceMonitor are checked as the README uses them.
package examples_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/manifests"
)

// repoRoot is the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// decodeAll reads every document of a multi-document YAML file.
func decodeAll(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeBytes(t, data)
}

func decodeBytes(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	out, err := manifests.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// example is one examples/*.yaml file, decoded.
type example struct {
	file        string
	objects     []*unstructured.Unstructured
	nodeClasses map[string]*v1alpha1.GPUNodeClass
	nodePools   []*karpv1.NodePool
	configMaps  []*corev1.ConfigMap
}

func loadExamples(t *testing.T) []example {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("examples/: %d files, want the 5 NodePool/GPUNodeClass examples and the device plugin config", len(files))
	}
	var out []example
	for _, f := range files {
		e := example{file: filepath.Base(f), objects: decodeAll(t, f), nodeClasses: map[string]*v1alpha1.GPUNodeClass{}}
		for _, o := range e.objects {
			var into any
			switch o.GetKind() {
			case "GPUNodeClass":
				nc := &v1alpha1.GPUNodeClass{}
				e.nodeClasses[o.GetName()], into = nc, nc
			case "NodePool":
				np := &karpv1.NodePool{}
				e.nodePools, into = append(e.nodePools, np), np
			case "ConfigMap":
				cm := &corev1.ConfigMap{}
				e.configMaps, into = append(e.configMaps, cm), cm
			default:
				t.Fatalf("%s: unexpected kind %s", e.file, o.GetKind())
			}
			raw, err := o.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(raw, into); err != nil {
				t.Fatalf("%s: %s %s: %v", e.file, o.GetKind(), o.GetName(), err)
			}
		}
		out = append(out, e)
	}
	return out
}

// startAPIServer runs kube-apiserver and etcd from controlplane.Assets
// (KUBEBUILDER_ASSETS, else bin/k8s, built by tools/build-envtest.sh) with
// the project's CRDs.
func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	dir, err := controlplane.Assets()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir, CRDs: apis.CRDs, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping the API server: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestExamplesApplyToAPIServer creates every object of every example on a
// real API server with strict field validation (unknown or misspelt fields
// fail) and the CRDs' OpenAPI and CEL rules, then reads each back.
func TestExamplesApplyToAPIServer(t *testing.T) {
	examples := loadExamples(t)
	c := startAPIServer(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gpu-operator"}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range examples {
		t.Run(e.file, func(t *testing.T) {
			for _, o := range e.objects {
				if err := c.Create(ctx, o.DeepCopy(), client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
					t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
				}
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(o.GroupVersionKind())
				if err := c.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
					t.Fatalf("reading %s %s back: %v", o.GetKind(), o.GetName(), err)
				}
			}
		})
	}

	// The check can fail: a misspelt field and a CEL violation are refused.
	t.Run("refused", func(t *testing.T) {
		nc := lo.Must(lo.Find(examples, func(e example) bool { return len(e.nodeClasses) > 0 }))
		var base *unstructured.Unstructured
		for _, o := range nc.objects {
			if o.GetKind() == "GPUNodeClass" {
				base = o
				break
			}
		}
		for name, mutate := range map[string]func(u *unstructured.Unstructured){
			"unknown field": func(u *unstructured.Unstructured) {
				lo.Must0(unstructured.SetNestedField(u.Object, int64(4), "spec", "gpu", "timeSlicingReplicas"))
			},
			"role and instanceProfile": func(u *unstructured.Unstructured) {
				lo.Must0(unstructured.SetNestedField(u.Object, "profile", "spec", "instanceProfile"))
			},
		} {
			u := base.DeepCopy()
			u.SetName("refused-" + strings.ReplaceAll(name, " ", "-"))
			mutate(u)
			err := c.Create(ctx, u, client.FieldValidation(metav1.FieldValidationStrict))
			if err == nil || !(apierrors.IsBadRequest(err) || apierrors.IsInvalid(err)) {
				t.Errorf("%s: created (err %v), want it refused", name, err)
			}
		}
	})
}

// TestExamplesArePairs: every example file but the device plugin config
// holds at least one NodePool, every NodePool references a GPUNodeClass of
// its own file, and every GPUNodeClass is used.
func TestExamplesArePairs(t *testing.T) {
	for _, e := range loadExamples(t) {
		if len(e.configMaps) > 0 {
			continue
		}
		t.Run(e.file, func(t *testing.T) {
			if len(e.nodeClasses) == 0 || len(e.nodePools) == 0 {
				t.Fatalf("%d GPUNodeClasses, %d NodePools; want a pair", len(e.nodeClasses), len(e.nodePools))
			}
			used := map[string]bool{}
			for _, np := range e.nodePools {
				ref := np.Spec.Template.Spec.NodeClassRef
				if ref == nil || ref.Group != v1alpha1.Group || ref.Kind != "GPUNodeClass" {
					t.Fatalf("NodePool %s: nodeClassRef %+v is not a GPUNodeClass", np.Name, ref)
				}
				if e.nodeClasses[ref.Name] == nil {
					t.Errorf("NodePool %s references GPUNodeClass %q, not in %s", np.Name, ref.Name, e.file)
				}
				used[ref.Name] = true
			}
			for name := range e.nodeClasses {
				if !used[name] {
					t.Errorf("GPUNodeClass %s is used by no NodePool", name)
				}
			}
		})
	}
}

// devicePluginConfig is the part of the NVIDIA device plugin's config file
// (version v1) that decides what a node advertises.
type devicePluginConfig struct {
	Version string `json:"version"`
	Flags   struct {
		MIGStrategy string `json:"migStrategy"`
	} `json:"flags"`
	Sharing struct {
		TimeSlicing struct {
			Resources []struct {
				Name     string `json:"name"`
				Replicas int32  `json:"replicas"`
			} `json:"resources"`
		} `json:"timeSlicing"`
	} `json:"sharing"`
}

const devicePluginConfigLabel = "nvidia.com/device-plugin.config"

// TestDevicePluginConfigMatchesNodeClasses: the node of every example
// NodePool gets a device plugin config (its nvidia.com/device-plugin.config
// label, or "default") that advertises what karpenter-gpu planned for: the
// same time-slicing replicas and MIG strategy as its GPUNodeClass.
func TestDevicePluginConfigMatchesNodeClasses(t *testing.T) {
	examples := loadExamples(t)
	cms := lo.FlatMap(examples, func(e example, _ int) []*corev1.ConfigMap { return e.configMaps })
	if len(cms) != 1 || cms[0].Name != "device-plugin-config" {
		t.Fatalf("want one ConfigMap device-plugin-config in examples/, got %d", len(cms))
	}
	configs := map[string]devicePluginConfig{}
	for key, raw := range cms[0].Data {
		var c devicePluginConfig
		if err := yaml.UnmarshalStrict([]byte(raw), &c); err != nil {
			t.Fatalf("device-plugin-config %s: %v", key, err)
		}
		if c.Version != "v1" {
			t.Errorf("device-plugin-config %s: version %q, want v1", key, c.Version)
		}
		configs[key] = c
	}
	if _, ok := configs["default"]; !ok {
		t.Fatal(`device-plugin-config has no "default" key (devicePlugin.config.default)`)
	}
	for _, e := range examples {
		for _, np := range e.nodePools {
			nc := e.nodeClasses[np.Spec.Template.Spec.NodeClassRef.Name]
			if nc == nil {
				continue // TestExamplesArePairs reports it
			}
			key := lo.CoalesceOrEmpty(np.Spec.Template.Labels[devicePluginConfigLabel], "default")
			t.Run(fmt.Sprintf("%s/%s=%s", e.file, np.Name, key), func(t *testing.T) {
				cfg, ok := configs[key]
				if !ok {
					t.Fatalf("no device plugin config %q", key)
				}
				replicas := int32(1)
				for _, r := range cfg.Sharing.TimeSlicing.Resources {
					if r.Name == v1alpha1.ResourceNVIDIAGPU {
						replicas = r.Replicas
					}
				}
				if replicas != nc.TimeSlicingReplicas() {
					t.Errorf("device plugin time-slices nvidia.com/gpu %d ways, GPUNodeClass %s plans %d", replicas, nc.Name, nc.TimeSlicingReplicas())
				}
				mig := lo.CoalesceOrEmpty(cfg.Flags.MIGStrategy, v1alpha1.MIGStrategyNone)
				if mig != nc.MIGStrategy() {
					t.Errorf("device plugin migStrategy %s, GPUNodeClass %s has %s", mig, nc.Name, nc.MIGStrategy())
				}
			})
		}
	}
}

// TestEveryGPUFeatureHasAnExample: on-demand, spot with on-demand fallback,
// reserved capacity (ODCR and capacity block), time-slicing and MIG.
func TestEveryGPUFeatureHasAnExample(t *testing.T) {
	examples := loadExamples(t)
	pools := lo.FlatMap(examples, func(e example, _ int) []*karpv1.NodePool { return e.nodePools })
	classes := lo.FlatMap(examples, func(e example, _ int) []*v1alpha1.GPUNodeClass { return lo.Values(e.nodeClasses) })
	capacityTypes := func(np *karpv1.NodePool) []string {
		for _, r := range np.Spec.Template.Spec.Requirements {
			if r.Key == karpv1.CapacityTypeLabelKey && r.Operator == corev1.NodeSelectorOpIn {
				return r.Values
			}
		}
		return nil
	}
	onlyOnDemand := func(np *karpv1.NodePool) bool {
		return slices.Equal(capacityTypes(np), []string{karpv1.CapacityTypeOnDemand})
	}
	spot := lo.Filter(pools, func(np *karpv1.NodePool, _ int) bool {
		return slices.Equal(capacityTypes(np), []string{karpv1.CapacityTypeSpot})
	})
	for name, ok := range map[string]bool{
		"on-demand": lo.ContainsBy(pools, onlyOnDemand),
		"spot + fallback": lo.ContainsBy(spot, func(s *karpv1.NodePool) bool {
			return lo.ContainsBy(pools, func(np *karpv1.NodePool) bool {
				return onlyOnDemand(np) && lo.FromPtr(np.Spec.Weight) < lo.FromPtr(s.Spec.Weight) && np.Spec.Template.Spec.NodeClassRef.Name == s.Spec.Template.Spec.NodeClassRef.Name
			})
		}),
		"reserved": lo.ContainsBy(pools, func(np *karpv1.NodePool) bool { return slices.Contains(capacityTypes(np), karpv1.CapacityTypeReserved) }),
		"reservation id": lo.ContainsBy(pools, func(np *karpv1.NodePool) bool {
			return lo.ContainsBy(np.Spec.Template.Spec.Requirements, func(r karpv1.NodeSelectorRequirementWithMinValues) bool {
				return r.Key == v1alpha1.LabelCapacityReservationID
			})
		}),
		"time-slicing": lo.ContainsBy(classes, func(nc *v1alpha1.GPUNodeClass) bool { return nc.TimeSlicingReplicas() > 1 }),
		"MIG":          lo.ContainsBy(classes, func(nc *v1alpha1.GPUNodeClass) bool { return nc.MIGStrategy() != v1alpha1.MIGStrategyNone }),
	} {
		if !ok {
			t.Errorf("no example for %s", name)
		}
	}
}
