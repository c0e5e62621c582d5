package operator_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/operator/options"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	fakecloud "github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

// Layers returns the dynamic types of a decorated cloud provider, outermost
// first, following each decorator's embedded CloudProvider.
func layers(cp karpcp.CloudProvider) []string {
	var out []string
	iface := reflect.TypeFor[karpcp.CloudProvider]()
	for cp != nil {
		out = append(out, fmt.Sprintf("%T", cp))
		v := reflect.ValueOf(cp)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			break
		}
		var next karpcp.CloudProvider
		for i := 0; i < v.Elem().NumField(); i++ {
			f := v.Elem().Type().Field(i)
			if f.Anonymous && f.Type == iface {
				next, _ = v.Elem().Field(i).Interface().(karpcp.CloudProvider)
			}
		}
		cp = next
	}
	return out
}

// fixedTypes wraps the provider with a fixed instance type list.
type fixedTypes struct {
	*gpucp.CloudProvider
}

func (fixedTypes) GetInstanceTypes(context.Context, *karpv1.NodePool) ([]*karpcp.InstanceType, error) {
	return []*karpcp.InstanceType{{Name: "fixed"}}, nil
}

func TestNewCloudProvider(t *testing.T) {
	cases := []struct {
		name        string
		gates       options.FeatureGates
		wrap        bool
		inner       string
		wantMatcher bool
		// overlay: GetInstanceTypes goes through the NodeOverlay store,
		// which has not evaluated the pool yet.
		overlay bool
	}{
		{name: "core's default gates", inner: "*cloudprovider.CloudProvider"},
		{name: "node repair", gates: options.FeatureGates{NodeRepair: true}, inner: "*cloudprovider.CloudProvider", wantMatcher: true},
		{name: "wrapped (simulator)", wrap: true, inner: "operator_test.fixedTypes"},
		{name: "node overlay", gates: options.FeatureGates{NodeOverlay: true}, wrap: true, inner: "operator_test.fixedTypes", overlay: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := options.ToContext(context.Background(), &options.Options{FeatureGates: tc.gates})
			clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
			o := operator.CloudProviderOptions{Provider: gpucp.Options{KubeClient: kube, Backend: fakecloud.NewFleet(fakecloud.Options{Clock: clk}), Clock: clk, ClusterName: "test"}}
			if tc.wrap {
				o.Wrap = func(p *gpucp.CloudProvider) karpcp.CloudProvider { return fixedTypes{p} }
			}
			cp, err := operator.NewCloudProvider(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"*overlay.decorator", "*metrics.decorator", tc.inner}
			if got := layers(cp.Decorated); strings.Join(got, " > ") != strings.Join(want, " > ") {
				t.Errorf("layers %v, want %v", got, want)
			}
			if got := layers(cp.Undecorated); strings.Join(got, " > ") != strings.Join(want[1:], " > ") {
				t.Errorf("undecorated layers %v, want %v", got, want[1:])
			}
			if cp.Provider == nil || cp.InstanceTypeStore == nil {
				t.Fatal("provider or instance type store missing")
			}
			if (cp.RepairPolicyMatcher != nil) != tc.wantMatcher {
				t.Errorf("repair policy matcher %v, want one: %v", cp.RepairPolicyMatcher, tc.wantMatcher)
			}
			if got := cp.NewCluster(clk, kube).RepairPolicyMatcher(); got != cp.RepairPolicyMatcher {
				t.Error("cluster state does not carry the repair policy matcher")
			}
			if !tc.wrap {
				return
			}
			its, err := cp.Decorated.GetInstanceTypes(ctx, &karpv1.NodePool{})
			var unevaluated *karpcp.UnevaluatedNodePoolError
			switch {
			case tc.overlay && !errors.As(err, &unevaluated):
				t.Errorf("GetInstanceTypes = %v, %v; want the NodeOverlay store's unevaluated-pool error", its, err)
			case !tc.overlay && (err != nil || len(its) != 1 || its[0].Name != "fixed"):
				t.Errorf("GetInstanceTypes = %v, %v; want the wrapped provider's types", its, err)
			}
		})
	}
}

func TestNewCloudProviderErrors(t *testing.T) {
	ctx := options.ToContext(context.Background(), &options.Options{})
	if _, err := operator.NewCloudProvider(ctx, operator.CloudProviderOptions{}); err == nil {
		t.Error("no error without a backend and client")
	}
}

// TestBinaryAndSimulatorBuildTheSameProvider fails when the controller
// binary or the simulator assembles the cloud provider, its decorators,
// the repair-policy matcher or cluster state by itself instead of through
// operator.NewCloudProvider.
func TestBinaryAndSimulatorBuildTheSameProvider(t *testing.T) {
	const mod = "github.com/karpenter-gpu/karpenter-gpu/"
	forbidden := map[string]bool{
		mod + "pkg/cloudprovider.New":                                              true,
		"sigs.k8s.io/karpenter/pkg/cloudprovider/metrics.Decorate":                 true,
		"sigs.k8s.io/karpenter/pkg/cloudprovider/overlay.Decorate":                 true,
		"sigs.k8s.io/karpenter/pkg/controllers/node/health.NewRepairPolicyMatcher": true,
		"sigs.k8s.io/karpenter/pkg/controllers/state.NewCluster":                   true,
		"sigs.k8s.io/karpenter/pkg/controllers/nodeoverlay.NewInstanceTypeStore":   true,
	}
	// The simulator's packages (pkg/simulation and any package below it,
	// and its command) count as one program.
	var simulator []string
	if err := filepath.WalkDir("../simulation", func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil || !d.IsDir():
			return err
		case d.Name() == "testdata":
			return filepath.SkipDir
		}
		simulator = append(simulator, path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, dirs := range map[string][]string{"controller": {"../../cmd/controller"}, "simulator": append(simulator, "../../cmd/simulator")} {
		t.Run(name, func(t *testing.T) {
			calls := map[string]int{}
			for _, dir := range dirs {
				for call, n := range packageCalls(t, dir) {
					calls[call] += n
					if forbidden[call] {
						t.Errorf("%s calls %s itself: build the provider and cluster state with operator.NewCloudProvider", dir, call)
					}
				}
			}
			if calls[mod+"pkg/operator.NewCloudProvider"] == 0 {
				t.Errorf("the %s (%v) does not build its provider with operator.NewCloudProvider", name, dirs)
			}
		})
	}
}

// packageCalls counts the calls to imported package functions in the
// non-test Go files of dir, by import path and name.
func packageCalls(t *testing.T, dir string) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		imports := map[string]string{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			name := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			imports[name] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil {
					if path, ok := imports[id.Name]; ok {
						out[path+"."+sel.Sel.Name]++
					}
				}
			}
			return true
		})
	}
	return out
}
