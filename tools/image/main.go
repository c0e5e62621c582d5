// Command image builds the karpenter-gpu controller image without a
// container runtime or a base image: `go build` (static, -trimpath) for each
// platform, then go-containerregistry packages the binaries into a
// multi-platform OCI image layout (an empty base with the binary, the
// x509roots/fallback CA roots and a non-root user; no shell).
//
//	make image                                  # bin/image, linux/amd64 + linux/arm64
//	cd tools/image && go run . --help
//
// The image name defaults to what the Helm chart pulls (values.yaml
// image.repository, tag v<appVersion>), so a default install runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", "../..", "repository root (the module holding --package)")
	pkg := flag.String("package", "./cmd/controller", "main package to build")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	out := flag.String("out", "bin/image", "OCI image layout directory (relative to --root)")
	repository := flag.String("repository", "", "image repository (default: the chart's image.repository)")
	tag := flag.String("tag", "", "image tag (default: the chart's, v<appVersion>)")
	version := flag.String("version", "", "version label and karpenter_build_info version (default: the tag)")
	revision := flag.String("revision", "", "commit label (default: git rev-parse HEAD, -dirty when the tree has changes)")
	source := flag.String("source", "https://github.com/karpenter-gpu/karpenter-gpu", "source label")
	flag.Parse()

	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	defRepo, defTag, err := ChartDefaults(filepath.Join(absRoot, "charts", "karpenter-gpu"))
	if err != nil {
		return err
	}
	o := Options{Repository: orDefault(*repository, defRepo), Tag: orDefault(*tag, defTag), Source: *source,
		Out: *out, Binaries: map[string]string{}}
	if !filepath.IsAbs(o.Out) {
		o.Out = filepath.Join(absRoot, o.Out)
	}
	o.Version = orDefault(*version, o.Tag)
	o.Revision, o.Created = gitRevision(absRoot)
	if *revision != "" {
		o.Revision = *revision
	}
	tmp, err := os.MkdirTemp("", "karpenter-gpu-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range strings.Split(*platforms, ",") {
		p = strings.TrimSpace(p)
		bin := filepath.Join(tmp, strings.ReplaceAll(p, "/", "-"), "controller")
		start := time.Now()
		if err := GoBuild(absRoot, *pkg, p, o.Version, bin); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "built %s for %s in %s\n", *pkg, p, time.Since(start).Round(time.Second))
		o.Binaries[p] = bin
	}
	idx, err := Build(o)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s:%s@%s (%s) -> %s\n", o.Repository, o.Tag, digest, *platforms, o.Out)
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// gitRevision returns HEAD's commit (with -dirty when the tree differs) and
// commit time; "unknown" and the Unix epoch outside a git checkout.
func gitRevision(dir string) (string, time.Time) {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		b, err := cmd.Output()
		return strings.TrimSpace(string(b)), err
	}
	rev, err := git("rev-parse", "HEAD")
	if err != nil {
		return "unknown", time.Unix(0, 0).UTC()
	}
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		rev += "-dirty"
	}
	created := time.Unix(0, 0).UTC()
	if ct, err := git("log", "-1", "--format=%ct"); err == nil {
		if sec, err := strconv.ParseInt(ct, 10, 64); err == nil {
			created = time.Unix(sec, 0).UTC()
		}
	}
	return rev, created
}
