package idlegpu

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/test"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog/catalogtest"
)

func shapePod(name, cpu string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}}}
}

func newTestController() *Controller {
	c := &Controller{rightSizedCache: map[string]float64{}}
	c.newPoll()
	return c
}

// TestShapesKeyIsAMultiset: the right-sized memo must tell {A, A} from {A}
// and from {} (a set hash XORs identical shapes away, which gave nodes
// with two identical pods the right-sized cost of an empty node), and must
// not depend on pod order or names, whether a pod's shape is hashed afresh
// or read from the last poll's memo.
func TestShapesKeyIsAMultiset(t *testing.T) {
	c := newTestController()
	a1, a2, b := shapePod("a1", "1"), shapePod("a2", "1"), shapePod("b", "2")
	for poll := range 2 {
		keys := map[string]string{}
		for name, pods := range map[string][]*corev1.Pod{
			"{}": nil, "{A}": {a1}, "{A,A}": {a1, a2}, "{A,A,B}": {a1, a2, b}, "{B}": {b}, "{A,B}": {a1, b},
		} {
			k := c.shapesKey(pods)
			if k == "" {
				t.Fatalf("poll %d, %s: no key", poll, name)
			}
			if other, dup := keys[k]; dup {
				t.Fatalf("poll %d: %s and %s share the key %s", poll, name, other, k)
			}
			keys[k] = name
		}
		if c.shapesKey([]*corev1.Pod{a1, b}) != c.shapesKey([]*corev1.Pod{b, a2}) {
			t.Fatalf("poll %d: the key depends on pod order or names", poll)
		}
		c.newPoll()
	}
}

// TestShapeMemoFollowsThePod: a pod whose object changed (a new
// resourceVersion, e.g. an in-place resize of its requests) is hashed
// again; its old shape is not reused.
func TestShapeMemoFollowsThePod(t *testing.T) {
	c := newTestController()
	p := shapePod("p", "1")
	before := c.shapesKey([]*corev1.Pod{p})
	c.newPoll()
	resized := p.DeepCopy()
	resized.ResourceVersion = "2"
	resized.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("3")
	if c.shapesKey([]*corev1.Pod{resized}) == before {
		t.Fatalf("a resized pod kept its old shape key")
	}
	if want := c.shapesKey([]*corev1.Pod{shapePod("q", "3")}); c.shapesKey([]*corev1.Pod{resized}) != want {
		t.Fatalf("the resized pod's key is not that of a fresh pod of its shape")
	}
}

// TestRightSizedFollowsPrices: the right-sized memo is keyed by the
// catalog too, so a price refresh or an offering marked unavailable
// between polls prices the same pods again (it used to return the first
// answer for as long as the NodePool's generation held).
func TestRightSizedFollowsPrices(t *testing.T) {
	its := catalogtest.InstanceTypes(t, catalog.Options{Region: "us-east-1", Zones: []string{"us-east-1a"}, CapacityTypes: []string{karpv1.CapacityTypeOnDemand}})
	np := test.NodePool(karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu", UID: "u"}})
	pod := shapePod("p", "1")
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}
	pod.Spec.Containers[0].Resources.Requests["nvidia.com/gpu"] = resource.MustParse("1")
	pod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	c := newTestController()
	first, ok := c.rightSized(np, its, []*corev1.Pod{pod})
	if !ok || first <= 0 {
		t.Fatalf("right-sized cost %v, %v", first, ok)
	}
	// The offering the pod was right-sized on (the cheapest with a GPU)
	// doubles in price in the next poll.
	var cheapest *karpcp.Offering
	for _, it := range its {
		for _, o := range it.Offerings {
			if o.Available && o.Price == first {
				cheapest = o
			}
		}
	}
	if cheapest == nil {
		t.Fatalf("no offering at the right-sized price %v (one node expected)", first)
	}
	cheapest.Price *= 2
	c.newPoll()
	second, ok := c.rightSized(np, its, []*corev1.Pod{pod})
	if !ok || second == first || second > 2*first {
		t.Fatalf("after the price change: %v (before %v)", second, first)
	}
	cheapest.Available = false
	c.newPoll()
	third, ok := c.rightSized(np, its, []*corev1.Pod{pod})
	// Now the answer is the next cheapest offering: no cheaper than the
	// last one, and not the unavailable offering's price.
	if !ok || third < second || third == cheapest.Price {
		t.Fatalf("with the doubled offering unavailable: %v (last poll %v, unavailable offering $%v)", third, second, cheapest.Price)
	}
}
