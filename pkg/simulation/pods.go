package simulation

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// Namespace holds the simulated pods whose input names no namespace.
const Namespace = workload.DefaultNamespace

// podState follows one workload pod through the pod objects that represent
// it (a new one after each eviction).
type podState struct {
	spec *workload.PodSpec
	idx  int
	// name of the current pod object ("" before arrival and after
	// departure).
	name     string
	attempts int
	departed bool
	// Per pod object: when it was created, bound and started running.
	created, bound, running time.Time
	node                    string
	// everRan is true once any of its pod objects ran.
	everRan   bool
	evictions int

	// Departure (evictions.go): departAt is when the pod leaves (zero when
	// it never does, or when it is a batch pod re-running lost work after an
	// eviction: it then leaves workLeft after its replacement starts
	// running). departGen invalidates departure events scheduled before an
	// eviction moved it.
	departAt  time.Time
	workLeft  time.Duration
	departGen uint64
	profile   *evictioncost.Profile
}

func (e *engine) podObject(ps *podState) *corev1.Pod {
	s := ps.spec
	reqs := s.Requests.DeepCopy()
	limits := s.Limits.DeepCopy()
	if limits == nil {
		limits = corev1.ResourceList{}
	}
	for name, q := range reqs {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
			limits[name] = q // extended resources must have limits == requests
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: ps.name, Namespace: s.NamespaceOrDefault(),
			Labels: s.Labels, Annotations: lo.Assign(s.Annotations, e.profileAnnotations(ps), map[string]string{workloadLabel: s.Key()}),
		},
		Spec: corev1.PodSpec{
			Containers:   []corev1.Container{{Name: "main", Image: "workload", Resources: corev1.ResourceRequirements{Requests: reqs, Limits: limits}}},
			NodeSelector: s.NodeSelector,
		},
	}
	pod.OwnerReferences = []metav1.OwnerReference{e.workloadOwner(ps)}
	e.gangPodMeta(ps, pod)
	pod.Spec.Tolerations = append(append([]corev1.Toleration{}, s.Tolerations...), extendedResourceTolerations(reqs)...)
	if s.NodeAffinity != nil {
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: s.NodeAffinity.DeepCopy()}
	}
	if len(s.Requirements) > 0 {
		if pod.Spec.Affinity == nil {
			pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
		}
		na := pod.Spec.Affinity.NodeAffinity
		if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
			na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}
		}
		terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		for i := range terms {
			terms[i].MatchExpressions = append(terms[i].MatchExpressions, s.Requirements...)
		}
	}
	return pod
}

// workloadOwner is the controller of the pod's objects: each workload pod
// is its own workload (a Job for batch pods, a ReplicaSet for service
// replicas, by its eviction class), and its replacement after an eviction
// has the same controller, as a Job's or a ReplicaSet's would. No such
// object exists in the simulated API; the owner reference is what the
// controller reads (evictioncost.Workload).
func (e *engine) workloadOwner(ps *podState) metav1.OwnerReference {
	h := fnv.New64a()
	_, _ = h.Write([]byte(ps.spec.Key()))
	ref := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: ps.spec.Name,
		UID: types.UID(fmt.Sprintf("workload-%016x", h.Sum64())), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	if e.profileOf(ps).Class == evictioncost.Service {
		ref.APIVersion, ref.Kind = "apps/v1", "ReplicaSet"
	}
	return ref
}

// objectKey keys e.byName: namespace/name of a pod object.
func objectKey(namespace, name string) string { return namespace + "/" + name }

// arrive creates the pod, pending; kube-scheduler sees it next.
func (e *engine) arrive(ps *podState) error {
	if ps.departed && ps.spec.Gang != nil {
		return nil // a gang member whose gang finished before it arrived
	}
	e.as("workload")
	ps.name = ps.spec.Name
	if ps.attempts > 0 {
		ps.name = fmt.Sprintf("%s-r%d", ps.spec.Name, ps.attempts)
	}
	ps.attempts++
	ps.created, ps.bound, ps.running, ps.node = e.clk.Now(), time.Time{}, time.Time{}, ""
	e.byName[objectKey(ps.spec.NamespaceOrDefault(), ps.name)] = ps
	pod := e.podObject(ps)
	pod.Status.Phase = corev1.PodPending
	if err := e.kube.Create(e.ctx, pod); err != nil {
		return fmt.Errorf("creating pod %s, %w", ps.name, err)
	}
	e.metrics.podArrived(ps)
	return nil
}

// depart ends a pod at its trace deletion time: a running pod completes
// (phase Succeeded, which the kubelet reports and Karpenter's pod-event
// tracking sees), then the pod object is deleted; a pending one is deleted.
func (e *engine) depart(ps *podState) error {
	e.as("workload")
	ps.departed = true
	e.metrics.podDeparted(ps)
	if ps.name == "" {
		return nil
	}
	key := types.NamespacedName{Namespace: ps.spec.NamespaceOrDefault(), Name: ps.name}
	pod := &corev1.Pod{}
	if err := e.kube.Get(e.ctx, key, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if pod.Spec.NodeName != "" {
		stored := pod.DeepCopy()
		pod.Status.Phase = corev1.PodSucceeded
		if err := e.kube.Status().Patch(e.ctx, pod, client.MergeFrom(stored)); err != nil {
			return fmt.Errorf("completing pod %s, %w", ps.name, err)
		}
		e.enqueue(cPodEvents, key) // terminal transition of a bound pod
		if err := e.settle(); err != nil {
			return err
		}
	}
	e.deleting.Store(true)
	err := e.kube.Delete(e.ctx, pod)
	e.deleting.Store(false)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting pod %s, %w", ps.name, err)
	}
	return nil
}

// observePod updates bookkeeping from a pod object the dispatcher saw
// change.
func (e *engine) observePod(pod *corev1.Pod) {
	ps := e.byName[objectKey(pod.Namespace, pod.Name)]
	if ps == nil || ps.name != pod.Name {
		return
	}
	if pod.Spec.NodeName != "" && ps.bound.IsZero() {
		ps.bound, ps.node = e.clk.Now(), pod.Spec.NodeName
		e.metrics.podBound(ps)
	}
	if pod.Status.Phase == corev1.PodRunning && ps.running.IsZero() {
		ps.running, ps.everRan = e.clk.Now(), true
		e.metrics.podRunning(ps)
		e.scheduleRerunDeparture(ps)
		e.gangMemberRunning(ps, pod.Spec.NodeName)
	}
}

// observePodGone accounts for a pod object that no longer exists.
func (e *engine) observePodGone(key types.NamespacedName) {
	ps := e.byName[objectKey(key.Namespace, key.Name)]
	if ps == nil || ps.name != key.Name {
		return
	}
	delete(e.byName, objectKey(key.Namespace, key.Name))
	e.gangMemberGone(ps)
	e.metrics.podGone(ps)
	ps.name = ""
}

// recreateEvicted plays the workload controller (ReplicaSet, Job) of pods
// that Karpenter evicted before their trace deletion time: a replacement
// pod is created at once and goes through scheduling again.
func (e *engine) recreateEvicted() bool {
	evicted, causes := e.changes.TakeEvicted()
	did := false
	for i, pod := range evicted {
		ps := e.byWorkloadName(pod.Annotations[workloadLabel])
		if ps == nil || ps.departed {
			continue
		}
		ps.evictions++
		e.debugf("evicted %s from %s", pod.Name, pod.Spec.NodeName)
		e.metrics.podEvicted(ps, causes[i])
		if ps.name == pod.Name || ps.name == "" {
			// The evicted object is the pod's latest (its deletion may
			// already have been observed).
			e.chargeEviction(ps, pod)
		}
		if ps.name == pod.Name {
			e.observePodGone(client.ObjectKeyFromObject(pod))
		}
		if err := e.arrive(ps); err != nil {
			e.metrics.controllerError("workload", err)
			continue
		}
		did = true
	}
	return did
}

const workloadLabel = "simulator.karpenter-gpu.io/pod"

func (e *engine) byWorkloadName(name string) *podState {
	if name == "" {
		return nil
	}
	if e.podIndex == nil {
		e.podIndex = map[string]*podState{}
		for _, ps := range e.pods {
			e.podIndex[ps.spec.Key()] = ps
		}
	}
	return e.podIndex[name]
}

// extendedResourceTolerations is what the ExtendedResourceToleration
// admission plugin adds to a pod requesting extended resources (nvidia.com/gpu
// and the like): a NoSchedule toleration per resource, so the pod may run on
// nodes tainted for that resource. The in-memory API server applies it to
// every pod, as clusters running GPU NodePools with a GPU taint do.
func extendedResourceTolerations(reqs corev1.ResourceList) []corev1.Toleration {
	var names []string
	for name := range reqs {
		if name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage || strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
			continue
		}
		names = append(names, string(name))
	}
	sort.Strings(names)
	out := make([]corev1.Toleration, 0, len(names))
	for _, n := range names {
		out = append(out, corev1.Toleration{Key: n, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}
