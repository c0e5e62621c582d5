package main

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
	"sigs.k8s.io/yaml"
)

const (
	// Entrypoint is where the controller binary lives in the image.
	Entrypoint = "/controller"
	// User is the image's (and the chart's) non-root user and group.
	User = "65532:65532"
	// CABundlePath is the first file Go's crypto/x509 reads system roots
	// from on Linux, so the AWS SDK's TLS clients verify against it.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	home         = "/home/nonroot"

	// OCI annotation and label keys.
	labelTitle    = "org.opencontainers.image.title"
	labelSource   = "org.opencontainers.image.source"
	labelVersion  = "org.opencontainers.image.version"
	labelRevision = "org.opencontainers.image.revision"
	labelCreated  = "org.opencontainers.image.created"
	labelLicenses = "org.opencontainers.image.licenses"
	// RefNameAnnotation names the image in the layout's index.json, as
	// skopeo's oci:DIR:TAG transport looks it up.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	// ImageNameAnnotation carries repository:tag (containerd's convention).
	ImageNameAnnotation = "io.containerd.image.name"
)

// Options describe one multi-platform image.
type Options struct {
	// Binaries maps a platform ("linux/amd64") to the static binary to
	// package for it.
	Binaries   map[string]string
	Repository string
	Tag        string
	Version    string
	Revision   string
	Source     string
	// Created stamps the config, the labels and every file (the commit
	// time keeps rebuilds byte-identical).
	Created time.Time
	// Out is the OCI image layout directory; it is replaced.
	Out string
}

func (o Options) validate() error {
	var errs []error
	if len(o.Binaries) == 0 {
		errs = append(errs, errors.New("no binaries to package"))
	}
	for p, bin := range o.Binaries {
		if _, err := parsePlatform(p); err != nil {
			errs = append(errs, err)
		}
		if st, err := os.Stat(bin); err != nil {
			errs = append(errs, fmt.Errorf("binary for %s: %w", p, err))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("binary for %s: %s is not a regular file", p, bin))
		}
	}
	if o.Repository == "" || o.Tag == "" {
		errs = append(errs, fmt.Errorf("repository %q and tag %q must both be set", o.Repository, o.Tag))
	}
	if strings.ContainsAny(o.Tag, ":/@ ") {
		errs = append(errs, fmt.Errorf("tag %q: must not contain ':', '/', '@' or spaces", o.Tag))
	}
	if o.Out == "" {
		errs = append(errs, errors.New("no output directory"))
	}
	return errors.Join(errs...)
}

func parsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	if p.OS != "linux" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want linux/<arch>", s)
	}
	return *p, nil
}

// Labels are the OCI labels (and index annotations) of the image.
func (o Options) Labels() map[string]string {
	return map[string]string{
		labelTitle:    "karpenter-gpu controller",
		labelSource:   o.Source,
		labelVersion:  o.Version,
		labelRevision: o.Revision,
		labelCreated:  o.Created.UTC().Format(time.RFC3339),
		labelLicenses: "Apache-2.0",
	}
}

// Build writes the image index (one image per platform) as an OCI image
// layout at o.Out and returns it.
func Build(o Options) (v1.ImageIndex, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	ca, err := caBundle()
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, platform := range slices.Sorted(maps.Keys(o.Binaries)) {
		p, _ := parsePlatform(platform)
		img, err := buildImage(o, p, o.Binaries[platform], ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", platform, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx = mutate.Annotations(idx, o.Labels()).(v1.ImageIndex)
	if err := os.RemoveAll(o.Out); err != nil {
		return nil, err
	}
	l, err := layout.Write(o.Out, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := l.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		RefNameAnnotation:   o.Tag,
		ImageNameAnnotation: o.Repository + ":" + o.Tag,
	})); err != nil {
		return nil, fmt.Errorf("writing %s: %w", o.Out, err)
	}
	return idx, nil
}

func buildImage(o Options, p v1.Platform, binary string, ca []byte) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	fs, err := rootFS(bin, ca, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(fs)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: o.Created.UTC()}
	cfg.Author = "karpenter-gpu"
	cfg.Config = v1.Config{
		Entrypoint: []string{Entrypoint},
		User:       User,
		WorkingDir: "/",
		Env:        []string{"HOME=" + home, "SSL_CERT_FILE=" + CABundlePath},
		Labels:     o.Labels(),
	}
	cfg.History = []v1.History{{Created: cfg.Created, CreatedBy: "tools/image: " + filepath.Base(binary) + " from go build, CA roots from golang.org/x/crypto/x509roots/fallback"}}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, o.Labels()).(v1.Image), nil
}

// rootFS is the image's single layer: the binary, the CA roots, and
// passwd/group entries for the non-root user. No shell, no package manager.
func rootFS(bin, ca []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error {
			return file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:"+home+":/sbin/nologin\n"))
		},
		func() error { return file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file(strings.TrimPrefix(CABundlePath, "/"), 0o644, ca) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir(strings.TrimPrefix(home, "/"), 0o700, 65532) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return file(strings.TrimPrefix(Entrypoint, "/"), 0o755, bin) },
		tw.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// caBundle is a PEM file of the Mozilla roots golang.org/x/crypto ships in
// x509roots/fallback. Roots that carry a constraint (a distrust date, for
// example) cannot be expressed in a PEM bundle and are left out.
func caBundle() ([]byte, error) {
	var buf bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("x509roots/fallback has no unconstrained roots")
	}
	return buf.Bytes(), nil
}

// GoBuild builds pkg (run from dir, a module directory) as a static binary
// for platform into out: CGO off, -trimpath, stripped, the version stamped
// into Karpenter core's build info (karpenter_build_info{version}).
func GoBuild(dir, pkg, platform, version, out string) error {
	p, err := parsePlatform(platform)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out,
		"-ldflags", "-s -w -X sigs.k8s.io/karpenter/pkg/operator.Version="+version, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=-mod=readonly")
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w", pkg, platform, err)
	}
	return nil
}

// ChartDefaults returns the image repository and tag the Helm chart pulls
// by default: values.yaml's image.repository (and image.tag, when set),
// else "v" + Chart.yaml's appVersion, as templates/_helpers.tpl does.
func ChartDefaults(chartDir string) (repository, tag string, err error) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	for file, into := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		raw, err := os.ReadFile(filepath.Join(chartDir, file))
		if err != nil {
			return "", "", err
		}
		if err := yaml.Unmarshal(raw, into); err != nil {
			return "", "", fmt.Errorf("%s: %w", file, err)
		}
	}
	tag = values.Image.Tag
	if tag == "" {
		tag = "v" + chart.AppVersion
	}
	if values.Image.Repository == "" || tag == "v" {
		return "", "", fmt.Errorf("%s: image.repository or appVersion missing", chartDir)
	}
	return values.Image.Repository, tag, nil
}
