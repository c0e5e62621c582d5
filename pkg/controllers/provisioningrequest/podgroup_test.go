package provisioningrequest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	pr "github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

func (e *env) groupPod(t *testing.T, group string, i int, minMembers string) {
	t.Helper()
	e.must(t, e.kube.Create(e.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", group, i), Namespace: "default", Labels: map[string]string{pr.LabelPodGroup: group},
			Annotations: map[string]string{pr.KeyPodGroupMinMembers: minMembers}},
		Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{{Name: pr.SchedulingGatePodGroup}},
			Containers: []corev1.Container{{Name: "w", Image: "x", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("8")}}}}},
	}))
}

func (e *env) groupRequests(t *testing.T, group string) []autoscalingv1.ProvisioningRequest {
	t.Helper()
	list := &autoscalingv1.ProvisioningRequestList{}
	e.must(t, e.kube.List(e.ctx, list, client.InNamespace("default"), client.MatchingLabels{pr.LabelPodGroup: group}))
	return list.Items
}

func (e *env) setRequestStatus(t *testing.T, req *autoscalingv1.ProvisioningRequest, typ, booking string) {
	t.Helper()
	req.Status.Conditions = append(req.Status.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.NewTime(e.clk.Now())})
	req.Status.ProvisioningClassDetails = map[string]autoscalingv1.Detail{pr.DetailBooking: autoscalingv1.Detail(booking)}
	e.must(t, e.kube.Status().Update(e.ctx, req))
}

// The pod-group controller's steps over an in-memory API (the request
// controller's part is played by the test; test/gang runs both on a real
// API server).
func TestPodGroupSteps(t *testing.T) {
	e := newEnv(t, pr.Options{})
	pg := pr.NewPodGroupController(pr.PodGroupOptions{Clock: e.clk, KubeClient: e.kube, Recorder: events.NewRecorder(&record.FakeRecorder{}), RetryBackoff: 10 * time.Second})
	step := func() reconcile.Result {
		t.Helper()
		res, err := pg.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: "train"}})
		e.must(t, err)
		return res
	}
	pods := func() []corev1.Pod {
		list := &corev1.PodList{}
		e.must(t, e.kube.List(e.ctx, list, client.InNamespace("default")))
		return list.Items
	}

	e.groupPod(t, "train", 0, "2")
	step()
	if reqs := e.groupRequests(t, "train"); len(reqs) != 0 {
		t.Fatalf("1 of 2 members: %d requests", len(reqs))
	}
	e.groupPod(t, "train", 1, "2")
	step()
	reqs := e.groupRequests(t, "train")
	if len(reqs) != 1 || reqs[0].Name != pr.RequestName("train", 0) || len(reqs[0].Spec.PodSets) != 1 || reqs[0].Spec.PodSets[0].Count != 2 ||
		reqs[0].Spec.ProvisioningClassName != autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp {
		t.Fatalf("2 of 2 members: requests %+v", reqs)
	}
	// Failed: replaced after the backoff, pods still gated.
	e.setRequestStatus(t, &reqs[0], autoscalingv1.Failed, "")
	if res := step(); res.RequeueAfter <= 0 || len(e.groupRequests(t, "train")) != 1 {
		t.Fatalf("replaced within the backoff (requeue %s)", res.RequeueAfter)
	}
	e.clk.Step(11 * time.Second)
	step()
	reqs = e.groupRequests(t, "train")
	if len(reqs) != 1 || reqs[0].Name != pr.RequestName("train", 1) {
		t.Fatalf("after the backoff: requests %v, want only %s", lo.Map(reqs, func(r autoscalingv1.ProvisioningRequest, _ int) string { return r.Name }), pr.RequestName("train", 1))
	}
	if lo.SomeBy(pods(), func(p corev1.Pod) bool { return len(p.Spec.SchedulingGates) == 0 }) {
		t.Fatal("a pod was ungated although no request was provisioned")
	}
	// Provisioned (held): ungated, annotated, tolerating the booking taint.
	reqs[0].UID = types.UID("uid-train-1")
	e.setRequestStatus(t, &reqs[0], autoscalingv1.Provisioned, pr.BookingHeld)
	step()
	for _, p := range pods() {
		if len(p.Spec.SchedulingGates) != 0 || p.Annotations[autoscalingv1.ProvisioningRequestPodAnnotationKey] != reqs[0].Name ||
			!lo.Contains(p.Spec.Tolerations, pr.BookingToleration(string(reqs[0].UID))) {
			t.Fatalf("pod %s not released to its capacity: gates %v, annotations %v, tolerations %v", p.Name, p.Spec.SchedulingGates, p.Annotations, p.Spec.Tolerations)
		}
	}
	// A member arriving after the booking is over (its pods bound) gets its
	// own request.
	for _, p := range pods() {
		p.Spec.NodeName = "node-" + p.Name
		e.must(t, e.kube.Update(e.ctx, &p))
	}
	reqs[0].Status.ProvisioningClassDetails[pr.DetailBooking] = pr.BookingConsumed
	e.must(t, e.kube.Status().Update(e.ctx, &reqs[0]))
	e.groupPod(t, "train", 2, "2")
	step()
	reqs = e.groupRequests(t, "train")
	last, ok := lo.Find(reqs, func(r autoscalingv1.ProvisioningRequest) bool { return r.Name == pr.RequestName("train", 2) })
	if !ok || last.Spec.PodSets[0].Count != 1 {
		t.Fatalf("late member: requests %v, want %s for 1 pod", lo.Map(reqs, func(r autoscalingv1.ProvisioningRequest, _ int) string { return r.Name }), pr.RequestName("train", 2))
	}
	// No pod left: requests and templates go.
	for _, p := range pods() {
		e.must(t, e.kube.Delete(e.ctx, &p))
	}
	step()
	tmpls := &corev1.PodTemplateList{}
	e.must(t, e.kube.List(e.ctx, tmpls, client.MatchingLabels{pr.LabelPodGroup: "train"}))
	if n := len(e.groupRequests(t, "train")); n != 0 || len(tmpls.Items) != 0 {
		t.Fatalf("group gone: %d requests, %d templates left", n, len(tmpls.Items))
	}
}

func TestPodGroupMinMembers(t *testing.T) {
	pod := func(v string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{pr.KeyPodGroupMinMembers: v}}}
	}
	for _, tt := range []struct {
		pods    []corev1.Pod
		want    int
		wantErr string
	}{
		{pods: []corev1.Pod{pod("4"), pod("4")}, want: 4},
		{pods: []corev1.Pod{pod("4"), pod("3")}, wantErr: "is 3 but other pods of the group say 4"},
		{pods: []corev1.Pod{pod("0")}, wantErr: `karpenter-gpu.io/pod-group-min-members is "0"; it must be a whole number from 1 to 10000`},
		{pods: []corev1.Pod{pod("many")}, wantErr: `is "many"`},
		{pods: []corev1.Pod{{}}, wantErr: "no pod of the group carries karpenter-gpu.io/pod-group-min-members"},
	} {
		got, err := pr.MinMembers(tt.pods)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want %q", tt.pods, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("got %d, %v; want %d", got, err, tt.want)
		}
	}
}

// lagging is an informer cache that has not yet seen some requests: List
// leaves out the ProvisioningRequests named in hidden.
type lagging struct {
	client.Client
	hidden map[string]bool
}

func (l *lagging) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := l.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	if reqs, ok := list.(*autoscalingv1.ProvisioningRequestList); ok {
		reqs.Items = lo.Reject(reqs.Items, func(r autoscalingv1.ProvisioningRequest, _ int) bool { return l.hidden[r.Name] })
	}
	return nil
}

// failing refuses to create or delete ProvisioningRequests while told to,
// as a controller that stops between the two writes of a replacement.
type failing struct {
	client.Client
	create, delete bool
}

func (f *failing) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	if _, ok := o.(*autoscalingv1.ProvisioningRequest); ok && f.create {
		return fmt.Errorf("injected: create refused")
	}
	return f.Client.Create(ctx, o, opts...)
}

func (f *failing) Delete(ctx context.Context, o client.Object, opts ...client.DeleteOption) error {
	if _, ok := o.(*autoscalingv1.ProvisioningRequest); ok && f.delete {
		return fmt.Errorf("injected: delete refused")
	}
	return f.Client.Delete(ctx, o, opts...)
}

// A failed group's retry is numbered from the requests on the API server,
// never from a cache that saw the failed request go but not its successor
// come, and the successor exists before the failed request goes: whatever
// happens between reconciles, a group ends with one request, the next.
func TestPodGroupRetryIsNumberedOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		// refuse is what the API refuses in the replacing reconcile.
		refuse func(*failing)
		// between is what the cache has not seen at the next reconciles.
		hidden []string
	}{
		{name: "cache has not seen the successor", refuse: func(*failing) {}, hidden: []string{pr.RequestName("train", 1)}},
		{name: "the successor's create was refused", refuse: func(f *failing) { f.create = true }},
		{name: "the failed request's delete was refused", refuse: func(f *failing) { f.delete = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pr.Options{})
			kube := &failing{Client: e.kube}
			cache := &lagging{Client: kube, hidden: map[string]bool{}}
			pg := pr.NewPodGroupController(pr.PodGroupOptions{Clock: e.clk, KubeClient: cache, APIReader: kube,
				Recorder: events.NewRecorder(&record.FakeRecorder{}), RetryBackoff: 10 * time.Second})
			step := func() error {
				_, err := pg.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: "train"}})
				return err
			}
			names := func() []string {
				return lo.Map(e.groupRequests(t, "train"), func(r autoscalingv1.ProvisioningRequest, _ int) string { return r.Name })
			}
			e.groupPod(t, "train", 0, "2")
			e.groupPod(t, "train", 1, "2")
			e.must(t, step())
			reqs := e.groupRequests(t, "train")
			e.setRequestStatus(t, &reqs[0], autoscalingv1.Failed, "")
			e.clk.Step(11 * time.Second)
			tc.refuse(kube)
			injected := kube.create || kube.delete
			if err := step(); injected == (err == nil) {
				t.Fatalf("replacing reconcile: err %v", err)
			}
			kube.create, kube.delete = false, false
			for _, h := range tc.hidden {
				cache.hidden[h] = true
			}
			for range 2 {
				e.must(t, step())
			}
			if got := names(); len(got) != 1 || got[0] != pr.RequestName("train", 1) {
				t.Fatalf("requests %v, want only %s", got, pr.RequestName("train", 1))
			}
		})
	}
}
