package aws_test

import (
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/samber/lo"
	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// hostileClaim carries labels and taints that try to smuggle extra kubelet
// flags, labels or taints into the user data.
func hostileClaim() *karpv1.NodeClaim {
	c := claim("hostile", 1, req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, karpv1.CapacityTypeOnDemand))
	c.Labels = map[string]string{
		karpv1.NodePoolLabelKey:   "gpu-pool",
		"team":                    "ml",
		"evil-comma":              "a,injected=true",
		"evil-newline":            "a\n    - --register-with-taints=",
		"evil\"key":               "x",
		"kubernetes.io/hostname":  "spoofed",
		"node.kubernetes.io/role": "gpu",
	}
	c.Spec.Taints = []corev1.Taint{
		{Key: "nvidia.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule},
		{Key: "evil", Value: "x\nkind: Evil", Effect: corev1.TaintEffectNoSchedule},
		{Key: "bad-effect", Effect: "Explode"},
	}
	c.Spec.StartupTaints = []corev1.Taint{{Key: "node.example.com/initializing", Effect: corev1.TaintEffectNoExecute}}
	return c
}

func launchUserData(t *testing.T, e *env, nc *v1alpha1.GPUNodeClass) string {
	t.Helper()
	e.resolved(nc)
	e.launch(t, hostileClaim())
	lt := e.srv.LaunchTemplates()[e.srv.Instances()[0].LaunchTemplate]
	ud, err := base64.StdEncoding.DecodeString(lt.Data["UserData"])
	if err != nil {
		t.Fatal(err)
	}
	return string(ud)
}

func mimeParts(t *testing.T, doc string) map[string][]string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("user data is not MIME: %v\n%s", err, doc)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]string{}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = append(parts[ct], string(b))
	}
}

var wantLabels = "--node-labels=karpenter.sh/nodepool=gpu-pool,node.kubernetes.io/role=gpu,team=ml"

func TestUserDataAL2023(t *testing.T) {
	e := newEnv(t, inventory())
	ud := launchUserData(t, e, nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Spec.UserData = lo.ToPtr("#!/bin/bash\necho custom\n")
		nc.Spec.Kubelet = &v1alpha1.KubeletConfiguration{MaxPods: lo.ToPtr[int32](64)}
	}))
	parts := mimeParts(t, ud)
	if got := parts["text/x-shellscript"]; len(got) != 1 || !strings.Contains(got[0], "echo custom") {
		t.Errorf("custom shell part = %q", got)
	}
	if len(parts["application/node.eks.aws"]) != 1 {
		t.Fatalf("NodeConfig parts = %d, want 1:\n%s", len(parts["application/node.eks.aws"]), ud)
	}
	var cfg struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Cluster map[string]string `yaml:"cluster"`
			Kubelet struct {
				Config struct {
					MaxPods            int                 `yaml:"maxPods"`
					RegisterWithTaints []map[string]string `yaml:"registerWithTaints"`
				} `yaml:"config"`
				Flags []string `yaml:"flags"`
			} `yaml:"kubelet"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal([]byte(parts["application/node.eks.aws"][0]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != "NodeConfig" || cfg.Spec.Cluster["name"] != cluster || cfg.Spec.Cluster["apiServerEndpoint"] != "https://api.unit.example" ||
		cfg.Spec.Cluster["certificateAuthority"] != "Q0E=" || cfg.Spec.Cluster["cidr"] != "10.100.0.0/16" || cfg.Spec.Kubelet.Config.MaxPods != 64 {
		t.Errorf("NodeConfig = %+v", cfg)
	}
	taints := lo.Map(cfg.Spec.Kubelet.Config.RegisterWithTaints, func(m map[string]string, _ int) string { return m["key"] + "=" + m["value"] + ":" + m["effect"] })
	if !slices.Equal(taints, []string{"karpenter.sh/unregistered=:NoExecute", "nvidia.com/gpu=true:NoSchedule", "node.example.com/initializing=:NoExecute"}) {
		t.Errorf("registerWithTaints = %v", taints)
	}
	if !slices.Equal(cfg.Spec.Kubelet.Flags, []string{wantLabels}) {
		t.Errorf("kubelet flags = %q, want [%s]", cfg.Spec.Kubelet.Flags, wantLabels)
	}
	for _, bad := range []string{"injected", "--register-with-taints", "Evil", "spoofed", "Explode"} {
		if strings.Contains(ud, bad) {
			t.Errorf("user data contains %q:\n%s", bad, ud)
		}
	}
}

func TestUserDataBottlerocket(t *testing.T) {
	e := newEnv(t, inventory())
	ud := launchUserData(t, e, nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Spec.AMIFamily = v1alpha1.AMIFamilyBottlerocket
		nc.Spec.UserData = lo.ToPtr("[settings.kubernetes]\ncluster-name = \"wrong\"\n[settings.host-containers.admin]\nenabled = true\n")
	}))
	var doc struct {
		Settings struct {
			Kubernetes struct {
				ClusterName string              `toml:"cluster-name"`
				APIServer   string              `toml:"api-server"`
				Labels      map[string]string   `toml:"node-labels"`
				Taints      map[string][]string `toml:"node-taints"`
			} `toml:"kubernetes"`
			HostContainers map[string]map[string]any `toml:"host-containers"`
		} `toml:"settings"`
	}
	if err := toml.Unmarshal([]byte(ud), &doc); err != nil {
		t.Fatalf("user data is not TOML: %v\n%s", err, ud)
	}
	k := doc.Settings.Kubernetes
	if k.ClusterName != cluster || k.APIServer != "https://api.unit.example" {
		t.Errorf("cluster settings = %+v", k)
	}
	if doc.Settings.HostContainers["admin"]["enabled"] != true {
		t.Errorf("user settings not merged: %+v", doc.Settings.HostContainers)
	}
	if !slices.Equal(k.Taints["karpenter.sh/unregistered"], []string{":NoExecute"}) || !slices.Equal(k.Taints["nvidia.com/gpu"], []string{"true:NoSchedule"}) || len(k.Taints) != 3 {
		t.Errorf("node-taints = %v", k.Taints)
	}
	if len(k.Labels) != 3 || k.Labels["team"] != "ml" || k.Labels["node.kubernetes.io/role"] != "gpu" {
		t.Errorf("node-labels = %v", k.Labels)
	}
	for _, bad := range []string{"injected", "Evil", "spoofed"} {
		if strings.Contains(ud, bad) {
			t.Errorf("user data contains %q:\n%s", bad, ud)
		}
	}
	lt := e.srv.LaunchTemplates()[e.srv.Instances()[0].LaunchTemplate]
	if lt.Data["BlockDeviceMapping.2.DeviceName"] != "/dev/xvdb" || lt.Data["BlockDeviceMapping.2.Ebs.VolumeSize"] != "200" || lt.Data["ImageId"] != "ami-brnv" {
		t.Errorf("Bottlerocket block devices / image = %v", lt.Data)
	}
}

func TestUserDataCustomIsVerbatim(t *testing.T) {
	e := newEnv(t, inventory())
	ud := launchUserData(t, e, nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Spec.AMIFamily = v1alpha1.AMIFamilyCustom
		nc.Spec.AMISelectorTerms = []v1alpha1.AMISelectorTerm{{ID: "ami-custom-new"}}
		nc.Spec.UserData = lo.ToPtr("#!/bin/bash\n/opt/bootstrap.sh\n")
	}))
	if ud != "#!/bin/bash\n/opt/bootstrap.sh\n" {
		t.Errorf("custom user data = %q", ud)
	}
}

func TestTagsCannotReachUserData(t *testing.T) {
	e := newEnv(t, inventory())
	ud := launchUserData(t, e, nodeClass(func(nc *v1alpha1.GPUNodeClass) {
		nc.Spec.Tags = map[string]string{"cost-center": "x\n--node-labels=owned=true"}
	}))
	if strings.Contains(ud, "cost-center") || strings.Contains(ud, "owned=true") {
		t.Errorf("a tag reached the user data:\n%s", ud)
	}
	inst := e.srv.Instances()[0]
	if inst.Tags["cost-center"] != "x\n--node-labels=owned=true" {
		t.Errorf("tag value not passed verbatim as an API parameter: %q", inst.Tags["cost-center"])
	}
}
