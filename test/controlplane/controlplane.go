// Package controlplane locates the control-plane binaries (etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager) that
// tools/build-envtest.sh builds into bin/k8s, for every suite that runs
// envtest, so a plain `go test ./...` after `make envtest-bin` finds them
// without KUBEBUILDER_ASSETS.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// EnvAssets is the variable envtest reads the binaries' directory from.
const EnvAssets = "KUBEBUILDER_ASSETS"

// RepoRoot is the module root: the nearest directory holding go.mod above
// the working directory (go test runs in the package's directory), else
// above this source file.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("no go.mod above the working directory; run the tests from inside the karpenter-gpu module")
}

// Assets returns the directory holding the control-plane binaries: that of
// KUBEBUILDER_ASSETS, or when it is unset bin/k8s under the module root,
// which it then exports as KUBEBUILDER_ASSETS so envtest (and Karpenter
// core's test.NewEnvironment) find the binaries too. It fails, naming the
// command that builds them, when any of bins is missing; no bins means etcd
// and kube-apiserver.
func Assets(bins ...string) (string, error) {
	if len(bins) == 0 {
		bins = []string{"etcd", "kube-apiserver"}
	}
	dir, source := os.Getenv(EnvAssets), EnvAssets
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir, source = filepath.Join(root, "bin", "k8s"), "bin/k8s under the module root"
	}
	for _, b := range bins {
		if info, err := os.Stat(filepath.Join(dir, b)); err != nil || info.IsDir() {
			return "", fmt.Errorf("control-plane binary %q not found in %s (%s); run `make envtest-bin` (tools/build-envtest.sh) or `make test`", b, dir, source)
		}
	}
	if os.Getenv(EnvAssets) == "" {
		if err := os.Setenv(EnvAssets, dir); err != nil {
			return "", err
		}
	}
	return dir, nil
}
