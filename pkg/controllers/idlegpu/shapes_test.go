package idlegpu

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
)

func shapePod(name, cpu string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}}}
}

// TestShapesKeyIsAMultiset: the right-sized memo must tell {A, A} from {A}
// and from {} (a set hash XORs identical shapes away, which gave nodes
// with two identical pods the right-sized cost of an empty node), and must
// not depend on pod order or names.
func TestShapesKeyIsAMultiset(t *testing.T) {
	np := &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu", UID: "u"}}
	a1, a2, b := shapePod("a1", "1"), shapePod("a2", "1"), shapePod("b", "2")
	keys := map[string]string{}
	for name, pods := range map[string][]*corev1.Pod{
		"{}": nil, "{A}": {a1}, "{A,A}": {a1, a2}, "{A,A,B}": {a1, a2, b}, "{B}": {b}, "{A,B}": {a1, b},
	} {
		k := shapesKey(np, pods)
		if k == "" {
			t.Fatalf("%s: no key", name)
		}
		if other, dup := keys[k]; dup {
			t.Fatalf("%s and %s share the key %s", name, other, k)
		}
		keys[k] = name
	}
	if shapesKey(np, []*corev1.Pod{a1, b}) != shapesKey(np, []*corev1.Pod{b, a2}) {
		t.Fatalf("the key depends on pod order or names")
	}
}
