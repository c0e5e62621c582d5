package provisioningrequest

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MaxPods bounds the pods one request may ask for (the API allows 32 PodSets
// of any count; a planning run is linear in the pods).
const MaxPods = 10000

// podList is the request's pods, built from its PodTemplates.
type podList struct {
	all []*corev1.Pod
}

// podsError is a request whose pods cannot be built: permanent until the
// request is recreated (its spec is immutable).
type podsError struct{ msg string }

func (e *podsError) Error() string { return e.msg }

func isPodsError(err error) (string, bool) {
	var pe *podsError
	if errors.As(err, &pe) {
		return pe.msg, true
	}
	return "", false
}

// podsFor builds the pods a request stands for: Count copies of each
// PodSet's PodTemplate, unbound and pending, as the scheduler and the packer
// would see them once the workload is admitted.
func (c *Controller) podsFor(ctx context.Context, pr *autoscalingv1.ProvisioningRequest) (podList, error) {
	total := 0
	for _, ps := range pr.Spec.PodSets {
		if ps.Count < 1 {
			return podList{}, &podsError{fmt.Sprintf("PodSet %q has count %d; it must be at least 1", ps.PodTemplateRef.Name, ps.Count)}
		}
		total += int(ps.Count)
	}
	if total == 0 {
		return podList{}, &podsError{"the request has no PodSets"}
	}
	if total > MaxPods {
		return podList{}, &podsError{fmt.Sprintf("the request asks for %d pods; at most %d are served", total, MaxPods)}
	}
	out := podList{all: make([]*corev1.Pod, 0, total)}
	for i, ps := range pr.Spec.PodSets {
		tmpl := &corev1.PodTemplate{}
		key := client.ObjectKey{Namespace: pr.Namespace, Name: ps.PodTemplateRef.Name}
		err := c.kube.Get(ctx, key, tmpl)
		if apierrors.IsNotFound(err) && c.opts.APIReader != nil {
			// Written just before the request (as Kueue and the pod-group
			// controller do): the informer cache may not have it yet.
			err = c.opts.APIReader.Get(ctx, key, tmpl)
		}
		if err != nil {
			if apierrors.IsNotFound(err) {
				return podList{}, &podsError{fmt.Sprintf("PodTemplate %s/%s of PodSet %d not found", pr.Namespace, ps.PodTemplateRef.Name, i)}
			}
			return podList{}, fmt.Errorf("getting PodTemplate %s/%s, %w", pr.Namespace, ps.PodTemplateRef.Name, err)
		}
		for j := 0; j < int(ps.Count); j++ {
			name := fmt.Sprintf("%s-%d-%d", pr.Name, i, j)
			p := &corev1.Pod{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{
					Name:        name,
					Namespace:   pr.Namespace,
					UID:         types.UID(fmt.Sprintf("%s-%d-%d", pr.UID, i, j)),
					Labels:      tmpl.Template.Labels,
					Annotations: map[string]string{autoscalingv1.ProvisioningRequestPodAnnotationKey: pr.Name, autoscalingv1.ProvisioningClassPodAnnotationKey: pr.Spec.ProvisioningClassName},
				},
				Spec: *tmpl.Template.Spec.DeepCopy(),
				Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
					Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
				}}},
			}
			out.all = append(out.all, p)
		}
	}
	return out, nil
}

// withZone returns copies of pods pinned to a zone by node selector, or
// false when a pod selects another zone itself.
func withZone(pods []*corev1.Pod, zone string) ([]*corev1.Pod, bool) {
	out := make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		if z, ok := p.Spec.NodeSelector[corev1.LabelTopologyZone]; ok && z != zone {
			return nil, false
		}
		q := p.DeepCopy()
		if q.Spec.NodeSelector == nil {
			q.Spec.NodeSelector = map[string]string{}
		}
		q.Spec.NodeSelector[corev1.LabelTopologyZone] = zone
		out[i] = q
	}
	return out, true
}
