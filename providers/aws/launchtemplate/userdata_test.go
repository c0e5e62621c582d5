package launchtemplate

import (
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// The kubelet's reservation and hard-eviction maps reach both user data
// formats under each format's names, and only when they are set.
func TestUserDataKubeletMaps(t *testing.T) {
	expectKubeletMaps(t, "AL2023", "systemReserved:", "kubeReserved:", "evictionHard:")
	expectKubeletMaps(t, v1alpha1.AMIFamilyBottlerocket,
		"[settings.kubernetes.system-reserved]", "[settings.kubernetes.kube-reserved]", "[settings.kubernetes.eviction-hard]")
}

// expectKubeletMaps renders family's user data with and without the maps
// and checks that the sections named keys appear only with them.
func expectKubeletMaps(t *testing.T, family string, keys ...string) {
	t.Helper()
	bs := &bootstrap{ClusterName: "c", ClusterEndpoint: "https://api", ClusterCA: "ca", Kubelet: &v1alpha1.KubeletConfiguration{
		SystemReserved: map[string]string{"cpu": "100m"},
		KubeReserved:   map[string]string{"memory": "1Gi"},
		EvictionHard:   map[string]string{"memory.available": "5%"},
	}}
	ud, err := bs.userData(family)
	if err != nil {
		t.Fatalf("%s: %v", family, err)
	}
	for _, w := range append(keys, "100m", "1Gi", "5%") {
		if !strings.Contains(ud, w) {
			t.Errorf("%s: user data lacks %q:\n%s", family, w, ud)
		}
	}
	bs.Kubelet = &v1alpha1.KubeletConfiguration{}
	if ud, err = bs.userData(family); err != nil {
		t.Fatalf("%s: %v", family, err)
	}
	for _, w := range keys {
		if strings.Contains(ud, w) {
			t.Errorf("%s: user data has %q with no map set:\n%s", family, w, ud)
		}
	}
}
