package main

import (
	"archive/tar"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var platforms = []string{"linux/amd64", "linux/arm64"}

// stubBinaries builds a tiny static main for every platform through
// GoBuild, the function `make image` builds the controller with.
func stubBinaries(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module stub\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"stub controller \" + os.Getenv(\"SSL_CERT_FILE\") + \"\\n\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]string{}
	for _, p := range platforms {
		bin := filepath.Join(dir, strings.ReplaceAll(p, "/", "-"))
		if err := GoBuild(dir, ".", p, "v9.9.9", bin); err != nil {
			t.Fatal(err)
		}
		out[p] = bin
	}
	return out
}

// files reads the image's flattened filesystem: name -> header and content.
func files(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[name] = b
		}
	}
}

// TestImageLayout builds a two-platform image from stub binaries and reads
// the written OCI layout back as a registry client would: one tagged index,
// one image per platform, each with the entrypoint, the non-root user, the
// version and commit labels, the CA roots and no shell.
func TestImageLayout(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := Options{Binaries: stubBinaries(t), Repository: "example.com/karpenter-gpu/controller", Tag: "v9.9.9",
		Version: "v9.9.9", Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://example.com/src",
		Created: created, Out: filepath.Join(t.TempDir(), "image")}
	if _, err := Build(o); err != nil {
		t.Fatal(err)
	}

	l, err := layout.ImageIndexFromPath(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	top, err := l.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1 (crane push takes a single entry)", len(top.Manifests))
	}
	d := top.Manifests[0]
	if d.MediaType != types.OCIImageIndex || d.Annotations[RefNameAnnotation] != "v9.9.9" ||
		d.Annotations[ImageNameAnnotation] != "example.com/karpenter-gpu/controller:v9.9.9" {
		t.Fatalf("index.json entry: %s %v", d.MediaType, d.Annotations)
	}
	idx, err := l.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("index does not validate: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range im.Manifests {
		got = append(got, m.Platform.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, platforms) {
		t.Fatalf("platforms %v, want %v", got, platforms)
	}
	if im.Annotations[labelRevision] != o.Revision || im.Annotations[labelVersion] != "v9.9.9" {
		t.Errorf("index annotations %v", im.Annotations)
	}

	for _, m := range im.Manifests {
		t.Run(m.Platform.String(), func(t *testing.T) {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Fatalf("image does not validate: %v", err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OS != m.Platform.OS || cfg.Architecture != m.Platform.Architecture {
				t.Errorf("config platform %s/%s, index says %s", cfg.OS, cfg.Architecture, m.Platform)
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{"/controller"}) || len(cfg.Config.Cmd) != 0 {
				t.Errorf("entrypoint %q cmd %q", cfg.Config.Entrypoint, cfg.Config.Cmd)
			}
			if cfg.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532 (the chart's runAsUser/runAsGroup)", cfg.Config.User)
			}
			for k, want := range map[string]string{labelVersion: "v9.9.9", labelRevision: o.Revision,
				labelSource: o.Source, labelCreated: "2026-01-02T03:04:05Z"} {
				if cfg.Config.Labels[k] != want {
					t.Errorf("label %s = %q, want %q", k, cfg.Config.Labels[k], want)
				}
			}
			if !cfg.Created.Time.Equal(created) {
				t.Errorf("created %v", cfg.Created)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("%d layers (%v), want 1 on an empty base", len(layers), err)
			}

			hdrs, data := files(t, img)
			for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh"} {
				if _, ok := hdrs[shell]; ok {
					t.Errorf("image contains %s", shell)
				}
			}
			ep := hdrs["/controller"]
			if ep == nil || ep.Typeflag != tar.TypeReg || ep.Mode&0o111 != 0o111 {
				t.Fatalf("/controller missing or not executable by every user: %+v", ep)
			}
			if !strings.Contains(string(data["/etc/passwd"]), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd lacks the non-root user: %q", data["/etc/passwd"])
			}
			if h := hdrs["/home/nonroot"]; h == nil || h.Uid != 65532 {
				t.Errorf("/home/nonroot not owned by 65532: %+v", h)
			}
			checkCABundle(t, data[CABundlePath])

			want, err := os.ReadFile(o.Binaries[m.Platform.String()])
			if err != nil {
				t.Fatal(err)
			}
			if string(data["/controller"]) != string(want) {
				t.Fatal("/controller differs from the built binary")
			}
			if m.Platform.Architecture == runtime.GOARCH {
				// The entrypoint, extracted from the image, runs here.
				bin := filepath.Join(t.TempDir(), "controller")
				if err := os.WriteFile(bin, data["/controller"], os.FileMode(ep.Mode)); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(bin)
				cmd.Env = cfg.Config.Env
				outb, err := cmd.Output()
				if err != nil || string(outb) != "stub controller "+CABundlePath+"\n" {
					t.Fatalf("running the image's entrypoint: %q, %v", outb, err)
				}
			}
		})
	}
}

// checkCABundle: the PEM bundle parses and holds the roots AWS endpoints
// chain to (Amazon Root CA 1-4, Starfield Services G2).
func checkCABundle(t *testing.T, pemData []byte) {
	t.Helper()
	subjects := map[string]bool{}
	n := 0
	for rest := pemData; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("CA bundle: %v", err)
		}
		if !c.IsCA {
			t.Errorf("CA bundle holds a non-CA certificate %s", c.Subject)
		}
		subjects[c.Subject.CommonName] = true
		n++
	}
	if n < 50 {
		t.Fatalf("CA bundle holds %d certificates, want the Mozilla root set", n)
	}
	for _, cn := range []string{"Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4", "Starfield Services Root Certificate Authority - G2"} {
		if !subjects[cn] {
			t.Errorf("CA bundle lacks %q", cn)
		}
	}
}

// TestBuildReproducible: the same inputs give the same index digest.
func TestBuildReproducible(t *testing.T) {
	bins := stubBinaries(t)
	var digests []v1.Hash
	for range 2 {
		idx, err := Build(Options{Binaries: bins, Repository: "r", Tag: "v1", Version: "v1", Revision: "abc",
			Created: time.Unix(1700000000, 0), Out: filepath.Join(t.TempDir(), "image")})
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same inputs: %s != %s", digests[0], digests[1])
	}
}

// TestBuildRejectsBadInput: clear errors, nothing written.
func TestBuildRejectsBadInput(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := func() Options {
		return Options{Binaries: map[string]string{"linux/amd64": bin}, Repository: "r", Tag: "v1", Out: filepath.Join(t.TempDir(), "o")}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no binaries", func(o *Options) { o.Binaries = nil }, "no binaries"},
		{"missing binary", func(o *Options) { o.Binaries = map[string]string{"linux/amd64": "/does/not/exist"} }, "binary for linux/amd64"},
		{"not linux", func(o *Options) { o.Binaries = map[string]string{"windows/amd64": bin} }, "want linux/<arch>"},
		{"no tag", func(o *Options) { o.Tag = "" }, "must both be set"},
		{"tag with colon", func(o *Options) { o.Tag = "v1:latest" }, "must not contain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.mutate(&o)
			_, err := Build(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(o.Out); statErr == nil {
				t.Errorf("%s written despite the error", o.Out)
			}
		})
	}
}

// TestChartDefaultsMatchImage: `make image` names the image the chart
// pulls by default (values.yaml image.repository, tag v<appVersion>).
func TestChartDefaultsMatchImage(t *testing.T) {
	repo, tag, err := ChartDefaults("../../charts/karpenter-gpu")
	if err != nil {
		t.Fatal(err)
	}
	values, err := os.ReadFile("../../charts/karpenter-gpu/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile("../../charts/karpenter-gpu/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(values), "repository: "+repo+"\n") {
		t.Errorf("repository %q is not values.yaml's image.repository", repo)
	}
	if !strings.Contains(string(chart), "appVersion: \""+strings.TrimPrefix(tag, "v")+"\"") {
		t.Errorf("tag %q is not v<appVersion>", tag)
	}
	if _, _, err := ChartDefaults(t.TempDir()); err == nil {
		t.Error("ChartDefaults of a directory without a chart: no error")
	}
}

// TestMakeImageLayout inspects the layout `make image` wrote to bin/image,
// when present (make image runs this test after building).
func TestMakeImageLayout(t *testing.T) {
	dir := "../../bin/image"
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Skip("bin/image not built; run `make image`")
	}
	repo, tag, err := ChartDefaults("../../charts/karpenter-gpu")
	if err != nil {
		t.Fatal(err)
	}
	l, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := l.IndexManifest()
	if err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json: %v %v", top, err)
	}
	if got := top.Manifests[0].Annotations[ImageNameAnnotation]; got != repo+":"+tag {
		t.Errorf("bin/image is %q, the chart pulls %s:%s", got, repo, tag)
	}
	idx, err := l.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.User != User || !slices.Equal(cfg.Config.Entrypoint, []string{Entrypoint}) ||
			cfg.Config.Labels[labelVersion] == "" || cfg.Config.Labels[labelRevision] == "" {
			t.Errorf("%s: user %q entrypoint %q labels %v", m.Platform, cfg.Config.User, cfg.Config.Entrypoint, cfg.Config.Labels)
		}
		_, data := files(t, img)
		if len(data["/controller"]) < 10<<20 {
			t.Errorf("%s: /controller is %d bytes; not the controller binary?", m.Platform, len(data["/controller"]))
		}
	}
}
