package idlegpu

import (
	"context"
	"fmt"

	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/client"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
)

// AnnotationProtected marks a karpenter.sh/do-not-disrupt annotation as set
// by this controller, so it is removed again when the GPU work ends and a
// user's own annotation is never touched.
const AnnotationProtected = v1alpha1.Group + "/protected-gpu-work"

// protect shields nodes running GPU pods from cost consolidation when their
// GPUNodeClass asks for it (gpu.disruption.protectRunningGPUPods, default
// true). Core's consolidation would otherwise evict a training or inference
// pod to save a few percent; do-not-disrupt is the one knob core honours for
// all its voluntary disruption methods. Expiration, spot interruption and
// repair still apply.
func (c *Controller) protect(ctx context.Context, gn gpuNode) error {
	want := gn.hasGPUWork && gn.nodeClass.ProtectRunningGPUPods()
	ours := gn.node.Annotations[AnnotationProtected] == "true"
	_, annotated := gn.node.Annotations[karpv1.DoNotDisruptAnnotationKey]
	if want == ours || (want && annotated) {
		return nil
	}
	stored := gn.node.DeepCopy()
	if want {
		gn.node.Annotations = lo.Assign(gn.node.Annotations, map[string]string{karpv1.DoNotDisruptAnnotationKey: "true", AnnotationProtected: "true"})
	} else {
		delete(gn.node.Annotations, karpv1.DoNotDisruptAnnotationKey)
		delete(gn.node.Annotations, AnnotationProtected)
	}
	if err := c.kubeClient.Patch(ctx, gn.node, client.MergeFrom(stored)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patching protection of node %s, %w", gn.node.Name, err)
	}
	return nil
}
