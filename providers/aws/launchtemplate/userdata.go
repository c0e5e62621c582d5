package launchtemplate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/samber/lo"
	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// bootstrap is what the user data must tell a node: how to join the cluster
// and with which labels and taints to register. Every value lands in the user
// data through a YAML or TOML encoder, never through string templating, and
// labels and taints are validated as Kubernetes would, so a value cannot
// break out of its field (for example a newline or comma that would add
// kubelet flags, labels or taints).
type bootstrap struct {
	ClusterName     string
	ClusterEndpoint string
	ClusterCA       string
	ClusterCIDR     string
	ClusterDNS      []string
	Labels          map[string]string
	Taints          []corev1.Taint
	Kubelet         *v1alpha1.KubeletConfiguration
	CustomUserData  string
}

// UnregisteredTaint is the taint every node registers with; Karpenter core
// removes it once it has matched the node to its NodeClaim.
var UnregisteredTaint = karpv1.UnregisteredNoExecuteTaint

// kubeletLabelAllowed reports whether the kubelet may set a label on its own
// node: the NodeRestriction admission plugin rejects kubernetes.io and
// k8s.io labels other than a few node-owned prefixes, and a kubelet
// registering with one fails to register at all. Karpenter core syncs the
// rest of the NodeClaim's labels once the node registers.
func kubeletLabelAllowed(key string) bool {
	domain, _, ok := strings.Cut(key, "/")
	if !ok {
		return true
	}
	for _, allowed := range []string{"kubelet.kubernetes.io", "node.kubernetes.io"} {
		if domain == allowed || strings.HasSuffix(domain, "."+allowed) {
			return true
		}
	}
	restricted := domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") || domain == "k8s.io" || strings.HasSuffix(domain, ".k8s.io")
	return !restricted
}

// safeLabels keeps the labels a kubelet can register with, sorted by key.
func safeLabels(labels map[string]string) ([]string, map[string]string) {
	out := map[string]string{}
	for k, v := range labels {
		if len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(v)) > 0 || !kubeletLabelAllowed(k) {
			continue
		}
		out[k] = v
	}
	keys := lo.Keys(out)
	sort.Strings(keys)
	return keys, out
}

// safeTaints keeps valid taints plus the unregistered taint, deduplicated.
func safeTaints(taints []corev1.Taint) []corev1.Taint {
	out := []corev1.Taint{UnregisteredTaint}
	for _, t := range taints {
		switch {
		case len(validation.IsQualifiedName(t.Key)) > 0,
			t.Value != "" && len(validation.IsValidLabelValue(t.Value)) > 0,
			t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectPreferNoSchedule && t.Effect != corev1.TaintEffectNoExecute,
			lo.ContainsBy(out, func(o corev1.Taint) bool { return o.Key == t.Key && o.Effect == t.Effect }):
			continue
		}
		out = append(out, corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	return out
}

// userData renders the user data of an image family, unencoded.
func (bs *bootstrap) userData(family string) (string, error) {
	switch family {
	case v1alpha1.AMIFamilyBottlerocket:
		return bs.bottlerocket()
	case v1alpha1.AMIFamilyCustom:
		return bs.CustomUserData, nil
	default:
		return bs.al2023()
	}
}

// al2023 renders a MIME multi-part document: the user's parts first, then a
// nodeadm NodeConfig (nodeadm merges NodeConfigs in order, so the cluster
// settings and taints here win).
func (bs *bootstrap) al2023() (string, error) {
	kubeletConfig := map[string]any{}
	taints := safeTaints(bs.Taints)
	kubeletConfig["registerWithTaints"] = lo.Map(taints, func(t corev1.Taint, _ int) map[string]string {
		m := map[string]string{"key": t.Key, "effect": string(t.Effect)}
		if t.Value != "" {
			m["value"] = t.Value
		}
		return m
	})
	if len(bs.ClusterDNS) > 0 {
		kubeletConfig["clusterDNS"] = bs.ClusterDNS
	}
	if k := bs.Kubelet; k != nil {
		if k.MaxPods != nil {
			kubeletConfig["maxPods"] = *k.MaxPods
		}
		if k.PodsPerCore != nil {
			kubeletConfig["podsPerCore"] = *k.PodsPerCore
		}
		setKubeletMaps(kubeletConfig, k, "systemReserved", "kubeReserved", "evictionHard")
		if len(k.ClusterDNS) > 0 {
			kubeletConfig["clusterDNS"] = k.ClusterDNS
		}
	}
	kubelet := map[string]any{"config": kubeletConfig}
	if keys, labels := safeLabels(bs.Labels); len(keys) > 0 {
		kubelet["flags"] = []string{"--node-labels=" + strings.Join(lo.Map(keys, func(k string, _ int) string { return k + "=" + labels[k] }), ",")}
	}
	cluster := map[string]any{"name": bs.ClusterName, "apiServerEndpoint": bs.ClusterEndpoint, "certificateAuthority": bs.ClusterCA}
	if bs.ClusterCIDR != "" {
		cluster["cidr"] = bs.ClusterCIDR
	}
	nodeConfig, err := yaml.Marshal(map[string]any{
		"apiVersion": "node.eks.aws/v1alpha1",
		"kind":       "NodeConfig",
		"spec":       map[string]any{"cluster": cluster, "kubelet": kubelet},
	})
	if err != nil {
		return "", fmt.Errorf("rendering NodeConfig, %w", err)
	}
	parts, err := customParts(bs.CustomUserData)
	if err != nil {
		return "", err
	}
	parts = append(parts, mimePart{contentType: "application/node.eks.aws", body: string(nodeConfig)})
	return renderMIME(parts)
}

type mimePart struct{ contentType, body string }

// customParts splits the user's user data into MIME parts: an existing MIME
// document keeps its parts, a NodeConfig becomes a nodeadm part, anything
// else a shell script.
func customParts(ud string) ([]mimePart, error) {
	if strings.TrimSpace(ud) == "" {
		return nil, nil
	}
	if strings.HasPrefix(strings.TrimSpace(ud), "MIME-Version:") {
		msg, err := mail.ReadMessage(strings.NewReader(strings.TrimSpace(ud) + "\n"))
		if err != nil {
			return nil, fmt.Errorf("parsing MIME user data, %w", err)
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil || params["boundary"] == "" {
			return nil, fmt.Errorf("MIME user data has no multipart boundary")
		}
		r := multipart.NewReader(msg.Body, params["boundary"])
		var parts []mimePart
		for {
			p, err := r.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading MIME user data, %w", err)
			}
			body, err := io.ReadAll(p)
			if err != nil {
				return nil, err
			}
			parts = append(parts, mimePart{contentType: lo.CoalesceOrEmpty(p.Header.Get("Content-Type"), "text/x-shellscript"), body: string(body)})
		}
		return parts, nil
	}
	if strings.Contains(ud, "node.eks.aws/") && strings.Contains(ud, "NodeConfig") {
		return []mimePart{{contentType: "application/node.eks.aws", body: ud}}, nil
	}
	return []mimePart{{contentType: `text/x-shellscript; charset="us-ascii"`, body: ud}}, nil
}

// renderMIME writes parts with a boundary derived from their content (so
// the same input gives the same launch template) and absent from it.
func renderMIME(parts []mimePart) (string, error) {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p.contentType + "\x00" + p.body + "\x00"))
	}
	boundary := "karpenter-gpu-" + hex.EncodeToString(h.Sum(nil))[:24]
	for _, p := range parts {
		if strings.Contains(p.body, boundary) {
			return "", fmt.Errorf("user data contains the MIME boundary %q", boundary)
		}
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(boundary); err != nil {
		return "", err
	}
	fmt.Fprintf(&buf, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	for _, p := range parts {
		pw, err := w.CreatePart(textproto.MIMEHeader{"Content-Type": {p.contentType}})
		if err != nil {
			return "", err
		}
		if _, err := io.WriteString(pw, p.body); err != nil {
			return "", err
		}
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// setKubeletMaps sets the kubelet settings given as maps (system and kube
// reservations, hard eviction thresholds) in a node's configuration, under
// the names its format uses, each only when it is not empty.
func setKubeletMaps(into map[string]any, k *v1alpha1.KubeletConfiguration, systemReserved, kubeReserved, evictionHard string) {
	for name, m := range map[string]map[string]string{systemReserved: k.SystemReserved, kubeReserved: k.KubeReserved, evictionHard: k.EvictionHard} {
		if len(m) > 0 {
			into[name] = m
		}
	}
}

// bottlerocket renders Bottlerocket TOML settings: the user's settings
// merged under ours (cluster settings, labels and taints win).
func (bs *bootstrap) bottlerocket() (string, error) {
	doc := map[string]any{}
	if strings.TrimSpace(bs.CustomUserData) != "" {
		if err := toml.Unmarshal([]byte(bs.CustomUserData), &doc); err != nil {
			return "", fmt.Errorf("parsing Bottlerocket user data as TOML, %w", err)
		}
	}
	settings := subTable(doc, "settings")
	k8s := subTable(settings, "kubernetes")
	k8s["cluster-name"] = bs.ClusterName
	k8s["api-server"] = bs.ClusterEndpoint
	k8s["cluster-certificate"] = bs.ClusterCA
	if len(bs.ClusterDNS) > 0 {
		k8s["cluster-dns-ip"] = bs.ClusterDNS[0]
	}
	if k := bs.Kubelet; k != nil {
		if k.MaxPods != nil {
			k8s["max-pods"] = int64(*k.MaxPods)
		}
		setKubeletMaps(k8s, k, "system-reserved", "kube-reserved", "eviction-hard")
	}
	keys, labels := safeLabels(bs.Labels)
	nodeLabels := subTable(k8s, "node-labels")
	for _, k := range keys {
		nodeLabels[k] = labels[k]
	}
	if len(nodeLabels) == 0 {
		delete(k8s, "node-labels")
	}
	nodeTaints := subTable(k8s, "node-taints")
	for _, t := range safeTaints(bs.Taints) {
		v := t.Value + ":" + string(t.Effect)
		existing, _ := nodeTaints[t.Key].([]any)
		if !lo.Contains(existing, any(v)) {
			existing = append(existing, v)
		}
		nodeTaints[t.Key] = existing
	}
	out, err := toml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("rendering Bottlerocket settings, %w", err)
	}
	return string(out), nil
}

func subTable(m map[string]any, key string) map[string]any {
	if t, ok := m[key].(map[string]any); ok {
		return t
	}
	t := map[string]any{}
	m[key] = t
	return t
}
