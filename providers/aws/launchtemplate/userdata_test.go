package launchtemplate

import (
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// The kubelet's reservation and hard-eviction maps reach both user data
// formats under each format's names, and only when they are set.
func TestUserDataKubeletMaps(t *testing.T) {
	for _, tc := range []struct {
		family string
		want   []string
	}{
		{"AL2023", []string{"systemReserved:", "kubeReserved:", "evictionHard:"}},
		{v1alpha1.AMIFamilyBottlerocket, []string{"[settings.kubernetes.system-reserved]", "[settings.kubernetes.kube-reserved]", "[settings.kubernetes.eviction-hard]"}},
	} {
		bs := &bootstrap{ClusterName: "c", ClusterEndpoint: "https://api", ClusterCA: "ca", Kubelet: &v1alpha1.KubeletConfiguration{
			SystemReserved: map[string]string{"cpu": "100m"},
			KubeReserved:   map[string]string{"memory": "1Gi"},
			EvictionHard:   map[string]string{"memory.available": "5%"},
		}}
		ud, err := bs.userData(tc.family)
		if err != nil {
			t.Fatalf("%s: %v", tc.family, err)
		}
		for _, w := range append(tc.want, "100m", "1Gi", "5%") {
			if !strings.Contains(ud, w) {
				t.Errorf("%s: user data lacks %q:\n%s", tc.family, w, ud)
			}
		}
		bs.Kubelet = &v1alpha1.KubeletConfiguration{}
		if ud, err = bs.userData(tc.family); err != nil {
			t.Fatalf("%s: %v", tc.family, err)
		}
		for _, w := range tc.want {
			if strings.Contains(ud, w) {
				t.Errorf("%s: user data has %q with no map set:\n%s", tc.family, w, ud)
			}
		}
	}
}
