package controlplane_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// module makes a module root with bin/k8s holding bins and returns it and a
// package directory inside it.
func module(t *testing.T, bins ...string) (root, pkg string) {
	t.Helper()
	root = t.TempDir()
	pkg = filepath.Join(root, "test", "envtest")
	for _, d := range []string{pkg, filepath.Join(root, "bin", "k8s")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range bins {
		if err := os.WriteFile(filepath.Join(root, "bin", "k8s", b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, pkg
}

func TestAssets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bins    []string // in the module's bin/k8s
		env     string   // "module" = the module's bin/k8s, "empty" = an empty dir, "" = unset
		want    string   // "module" = the module's bin/k8s
		wantErr string
	}{
		{name: "unset: bin/k8s under the module root", bins: []string{"etcd", "kube-apiserver"}, want: "module"},
		{name: "unset and not built", wantErr: "make envtest-bin"},
		{name: "unset and partly built", bins: []string{"etcd"}, wantErr: `"kube-apiserver" not found`},
		{name: "set: used as is", bins: []string{"etcd", "kube-apiserver"}, env: "module", want: "module"},
		{name: "set to a directory without the binaries", bins: []string{"etcd", "kube-apiserver"}, env: "empty", wantErr: "KUBEBUILDER_ASSETS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, pkg := module(t, tc.bins...)
			t.Chdir(pkg)
			assets := filepath.Join(root, "bin", "k8s")
			switch tc.env {
			case "module":
				t.Setenv(controlplane.EnvAssets, assets)
			case "empty":
				t.Setenv(controlplane.EnvAssets, t.TempDir())
			default:
				t.Setenv(controlplane.EnvAssets, "")
			}
			got, err := controlplane.Assets()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Assets() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != assets {
				t.Errorf("Assets() = %q, want %q", got, assets)
			}
			if env := os.Getenv(controlplane.EnvAssets); env != assets {
				t.Errorf("KUBEBUILDER_ASSETS = %q after Assets(), want %q (exported for envtest)", env, assets)
			}
		})
	}
}

func TestRepoRootFindsThisModule(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "build-envtest.sh")); err != nil {
		t.Errorf("RepoRoot() = %s, which is not karpenter-gpu's root: %v", root, err)
	}
}
