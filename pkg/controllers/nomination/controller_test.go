package nomination

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// A repack replacement is not nominated to while its move is under way: its
// room is for the pods of the nodes it replaces.
func TestRepackReplacementInFlight(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		want        bool
	}{
		{"an ordinary NodeClaim", nil, false},
		{"a replacement whose move is under way", map[string]string{v1alpha1.AnnotationRepackOf: "old-a,old-b"}, true},
		{"a replacement whose move completed", map[string]string{v1alpha1.AnnotationRepackOf: "old-a", v1alpha1.AnnotationRepackCompletedAt: "2026-12-02T16:00:00Z"}, false},
		{"a node being repacked (not a replacement)", map[string]string{v1alpha1.AnnotationRepackReplacements: "new-a"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc := &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nc", Annotations: c.annotations}}
			if got := repackReplacementInFlight(nc); got != c.want {
				t.Errorf("repackReplacementInFlight = %v, want %v", got, c.want)
			}
		})
	}
}
