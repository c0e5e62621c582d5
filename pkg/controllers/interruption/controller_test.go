package interruption_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakecr "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	"github.com/karpenter-gpu/karpenter-gpu/test/dashboard"
)

// memQueue is an in-memory Queue: Receive hands out every message not yet
// deleted, Delete records the handle (safe for the controller's workers).
type memQueue struct {
	mu         sync.Mutex
	msgs       []interruption.Message
	deleted    []string
	receiveErr error
	deleteErr  error
}

func (q *memQueue) Name() string { return "mem" }

func (q *memQueue) Receive(context.Context) ([]interruption.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.receiveErr != nil {
		return nil, q.receiveErr
	}
	return lo.Reject(q.msgs, func(m interruption.Message, _ int) bool { return slices.Contains(q.deleted, m.Handle) }), nil
}

func (q *memQueue) Delete(_ context.Context, m interruption.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleteErr != nil {
		return q.deleteErr
	}
	q.deleted = append(q.deleted, m.Handle)
	return nil
}

type marks struct {
	mu  sync.Mutex
	all []string
}

func (m *marks) MarkUnavailable(it, zone, ct string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all = append(m.all, it+"/"+zone+"/"+ct)
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// claim is a NodeClaim of the given node class group for instance id, with
// its Node.
func claim(name, group, id string) (*karpv1.NodeClaim, *corev1.Node) {
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{
			corev1.LabelInstanceTypeStable: "g6.xlarge", corev1.LabelTopologyZone: "us-east-1a", karpv1.CapacityTypeLabelKey: karpv1.CapacityTypeSpot,
		}},
		Spec:   karpv1.NodeClaimSpec{NodeClassRef: &karpv1.NodeClassReference{Group: group, Kind: "GPUNodeClass", Name: "default"}},
		Status: karpv1.NodeClaimStatus{ProviderID: "aws:///us-east-1a/" + id, NodeName: "node-" + name},
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + name, UID: types.UID("uid-node-" + name)}, Spec: corev1.NodeSpec{ProviderID: nc.Status.ProviderID}}
	return nc, node
}

func msg(kind interruption.Kind, state string, ids ...string) interruption.Message {
	return interruption.Message{ID: "m-" + string(kind), Handle: "h-" + string(kind) + "-" + strings.Join(ids, ","), Kind: kind, State: state, InstanceIDs: ids, Time: now.Add(-3 * time.Second)}
}

type counts struct{ received, deleted, drained, noAction, disrupted float64 }

func snapshot(kind interruption.Kind) counts {
	return counts{
		received:  testutil.ToFloat64(interruption.ReceivedMessages.WithLabelValues(string(kind))),
		deleted:   testutil.ToFloat64(interruption.DeletedMessages),
		drained:   testutil.ToFloat64(interruption.Actions.WithLabelValues(interruption.ActionCordonAndDrain)),
		noAction:  testutil.ToFloat64(interruption.Actions.WithLabelValues(interruption.ActionNone)),
		disrupted: coreDisrupted(string(kind)),
	}
}

// coreDisrupted reads Karpenter core's karpenter_nodeclaims_disrupted_total
// for a reason, summed over its other labels.
func coreDisrupted(reason string) float64 {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		panic(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "karpenter_nodeclaims_disrupted_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

func drainEvents(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestPoll(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  interruption.Message
		// deleted: the NodeClaims expected deleted (of "gpu" on i-gpu,
		// "aws" on i-aws, a Karpenter for AWS NodeClaim).
		deleted []string
		// events: reasons recorded (on the NodeClaim and its Node each).
		events  []string
		marked  []string
		drained float64
		noop    float64
	}{
		{name: "spot interruption of a karpenter-gpu instance", msg: msg(interruption.KindSpotInterruption, "", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"SpotInterrupted", "TerminatingOnInterruption"}, marked: []string{"g6.xlarge/us-east-1a/spot"}, drained: 1},
		{name: "capacity reservation interruption", msg: msg(interruption.KindCapacityReservationInterruption, "", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"CapacityReservationInterrupted", "TerminatingOnInterruption"}, drained: 1},
		{name: "scheduled change", msg: msg(interruption.KindScheduledChange, "", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"InstanceScheduledChange", "TerminatingOnInterruption"}, drained: 1},
		{name: "state change to stopping", msg: msg(interruption.KindStateChange, "stopping", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"InstanceStopping", "TerminatingOnInterruption"}, drained: 1},
		{name: "state change to stopped", msg: msg(interruption.KindStateChange, "stopped", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"InstanceStopping", "TerminatingOnInterruption"}, drained: 1},
		{name: "state change to shutting-down", msg: msg(interruption.KindStateChange, "shutting-down", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"InstanceTerminating", "TerminatingOnInterruption"}, drained: 1},
		{name: "state change to terminated", msg: msg(interruption.KindStateChange, "terminated", "i-gpu"),
			deleted: []string{"gpu"}, events: []string{"InstanceTerminating", "TerminatingOnInterruption"}, drained: 1},
		{name: "state change to running is nothing", msg: msg(interruption.KindStateChange, "running", "i-gpu")},
		{name: "rebalance recommendation: event only", msg: msg(interruption.KindRebalanceRecommendation, "", "i-gpu"),
			events: []string{"SpotRebalanceRecommendation"}, noop: 1},
		{name: "Karpenter for AWS's instance is left alone", msg: msg(interruption.KindSpotInterruption, "", "i-aws")},
		{name: "unknown instance", msg: msg(interruption.KindSpotInterruption, "", "i-nobody")},
		{name: "several instances, one ours", msg: msg(interruption.KindScheduledChange, "", "i-aws", "i-gpu", "i-nobody"),
			deleted: []string{"gpu"}, events: []string{"InstanceScheduledChange", "TerminatingOnInterruption"}, drained: 1},
		{name: "no-op", msg: msg(interruption.KindNoOp, "")},
		{name: "malformed", msg: interruption.Message{ID: "bad", Handle: "h-bad", Kind: interruption.KindMalformed, Err: errors.New("not JSON")}},
		{name: "unknown detail-type", msg: interruption.Message{ID: "odd", Handle: "h-odd", Kind: interruption.KindUnknown, Err: errors.New(`detail-type "EC2 Fleet Error"`)}},
		{name: "a kind the controller does not know", msg: interruption.Message{ID: "new", Handle: "h-new", Kind: "from_the_future", InstanceIDs: []string{"i-gpu"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gpu, gpuNode := claim("gpu", v1alpha1.Group, "i-gpu")
			aws, awsNode := claim("aws", "karpenter.k8s.aws", "i-aws")
			kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(gpu, gpuNode, aws, awsNode).Build()
			rec := record.NewFakeRecorder(100)
			q := &memQueue{msgs: []interruption.Message{tc.msg}}
			var marked marks
			ctrl := interruption.NewController(interruption.Options{Clock: clocktesting.NewFakeClock(now), KubeClient: kube, Recorder: events.NewRecorder(rec), Queue: q, Unavailable: &marked})
			before := snapshot(tc.msg.Kind)

			n, err := ctrl.Poll(context.Background())
			if err != nil || n != 1 {
				t.Fatalf("Poll = %d, %v; want 1, nil", n, err)
			}
			if !slices.Equal(q.deleted, []string{tc.msg.Handle}) {
				t.Errorf("deleted messages %v, want [%s]", q.deleted, tc.msg.Handle)
			}
			for _, name := range []string{"gpu", "aws"} {
				err := kube.Get(context.Background(), client.ObjectKey{Name: name}, &karpv1.NodeClaim{})
				if gone := apierrors.IsNotFound(err); gone != slices.Contains(tc.deleted, name) {
					t.Errorf("NodeClaim %s gone = %t (%v), want %t", name, gone, err, !gone)
				}
			}
			var want []string
			for _, r := range tc.events {
				want = append(want, r, r) // NodeClaim and Node
			}
			got := lo.Map(drainEvents(rec), func(e string, _ int) string { return strings.Fields(e)[1] })
			if !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
			if !slices.Equal(marked.all, tc.marked) {
				t.Errorf("marked unavailable %v, want %v", marked.all, tc.marked)
			}
			after := snapshot(tc.msg.Kind)
			d := counts{after.received - before.received, after.deleted - before.deleted, after.drained - before.drained, after.noAction - before.noAction, after.disrupted - before.disrupted}
			if d != (counts{1, 1, tc.drained, tc.noop, tc.drained}) {
				t.Errorf("metric increments %+v, want received 1, deleted 1, drained %v, no_action %v, core's disrupted_total %v", d, tc.drained, tc.noop, tc.drained)
			}
		})
	}
}

// Events name the interruption on both the NodeClaim and its Node.
func TestEventsOnNodeClaimAndNode(t *testing.T) {
	gpu, node := claim("gpu", v1alpha1.Group, "i-gpu")
	kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(gpu, node).Build()
	var objects []string
	rec := &objectRecorder{kinds: &objects}
	q := &memQueue{msgs: []interruption.Message{msg(interruption.KindSpotInterruption, "", "i-gpu")}}
	ctrl := interruption.NewController(interruption.Options{KubeClient: kube, Recorder: rec, Queue: q})
	if _, err := ctrl.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"NodeClaim/gpu SpotInterrupted", "Node/node-gpu SpotInterrupted", "NodeClaim/gpu TerminatingOnInterruption", "Node/node-gpu TerminatingOnInterruption"}
	if !slices.Equal(objects, want) {
		t.Errorf("events %v, want %v", objects, want)
	}
}

type objectRecorder struct{ kinds *[]string }

func (r *objectRecorder) Publish(evts ...events.Event) {
	for _, e := range evts {
		kind := "?"
		name := ""
		switch o := e.InvolvedObject.(type) {
		case *karpv1.NodeClaim:
			kind, name = "NodeClaim", o.Name
		case *corev1.Node:
			kind, name = "Node", o.Name
		}
		*r.kinds = append(*r.kinds, fmt.Sprintf("%s/%s %s", kind, name, e.Reason))
	}
}

// When the NodeClaim cannot be deleted the message stays in the queue (it is
// received again after its visibility timeout), and the error says why.
func TestFailuresKeepTheMessage(t *testing.T) {
	gpu, node := claim("gpu", v1alpha1.Group, "i-gpu")
	refuse := interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		return apierrors.NewServiceUnavailable("etcd is down")
	}}
	kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(gpu, node).WithInterceptorFuncs(refuse).Build()
	bad := interruption.Message{ID: "bad", Handle: "h-bad", Kind: interruption.KindMalformed, Err: errors.New("not JSON")}
	q := &memQueue{msgs: []interruption.Message{msg(interruption.KindSpotInterruption, "", "i-gpu"), bad}}
	ctrl := interruption.NewController(interruption.Options{KubeClient: kube, Recorder: events.NewRecorder(record.NewFakeRecorder(100)), Queue: q})
	_, err := ctrl.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "deleting NodeClaim gpu of instance i-gpu") || !strings.Contains(err.Error(), "etcd is down") {
		t.Fatalf("Poll error %v, want the NodeClaim deletion failure", err)
	}
	if !slices.Equal(q.deleted, []string{"h-bad"}) {
		t.Errorf("deleted messages %v, want only the malformed one", q.deleted)
	}

	// A queue that cannot be read or written is an error of the poll.
	q = &memQueue{receiveErr: errors.New("AccessDenied")}
	ctrl = interruption.NewController(interruption.Options{KubeClient: kube, Recorder: events.NewRecorder(record.NewFakeRecorder(100)), Queue: q})
	if _, err := ctrl.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), `receiving from interruption queue "mem"`) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("Poll error %v, want the receive failure", err)
	}
	q = &memQueue{msgs: []interruption.Message{bad}, deleteErr: errors.New("AccessDenied")}
	ctrl = interruption.NewController(interruption.Options{KubeClient: kube, Recorder: events.NewRecorder(record.NewFakeRecorder(100)), Queue: q})
	if _, err := ctrl.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "deleting message bad") {
		t.Errorf("Poll error %v, want the delete failure", err)
	}
}

// An empty poll waits IdleInterval; a batch polls again at once.
func TestReconcileRequeue(t *testing.T) {
	kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).Build()
	q := &memQueue{}
	ctrl := interruption.NewController(interruption.Options{KubeClient: kube, Recorder: events.NewRecorder(record.NewFakeRecorder(100)), Queue: q, IdleInterval: 3 * time.Second})
	res, err := ctrl.Reconcile(context.Background())
	if err != nil || res.RequeueAfter != 3*time.Second {
		t.Errorf("empty poll: %+v, %v; want requeue after 3s", res, err)
	}
	q.msgs = []interruption.Message{msg(interruption.KindNoOp, "")}
	res, err = ctrl.Reconcile(context.Background())
	if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter >= time.Millisecond {
		t.Errorf("batch: %+v, %v; want an immediate requeue", res, err)
	}
}

func TestInstanceID(t *testing.T) {
	for in, want := range map[string]string{"aws:///us-east-1a/i-0abc": "i-0abc", "": "", "i-0abc": "i-0abc", "aws:///us-east-1a/": ""} {
		if got := interruption.InstanceID(in); got != want {
			t.Errorf("InstanceID(%q) = %q, want %q", in, got, want)
		}
	}
}

// A full batch is handled by parallel workers: every NodeClaim deleted,
// every message deleted, each offering marked once per message.
func TestBatchInParallel(t *testing.T) {
	var objs []client.Object
	var msgs []interruption.Message
	for i := range 10 {
		nc, node := claim(fmt.Sprintf("gpu-%d", i), v1alpha1.Group, fmt.Sprintf("i-%017x", i))
		objs = append(objs, nc, node)
		msgs = append(msgs, msg(interruption.KindSpotInterruption, "", fmt.Sprintf("i-%017x", i)))
	}
	kube := fakecr.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).Build()
	q := &memQueue{msgs: msgs}
	var marked marks
	ctrl := interruption.NewController(interruption.Options{KubeClient: kube, Recorder: events.NewRecorder(record.NewFakeRecorder(100)), Queue: q, Unavailable: &marked, Workers: 4})
	if n, err := ctrl.Poll(context.Background()); err != nil || n != 10 {
		t.Fatalf("Poll = %d, %v", n, err)
	}
	if len(q.deleted) != 10 || len(lo.Uniq(q.deleted)) != 10 || len(marked.all) != 10 {
		t.Errorf("deleted %d messages (%d distinct), marked %d offerings; want 10 each", len(q.deleted), len(lo.Uniq(q.deleted)), len(marked.all))
	}
	left := &karpv1.NodeClaimList{}
	if err := kube.List(context.Background(), left); err != nil || len(left.Items) != 0 {
		t.Errorf("%d NodeClaims left (%v), want none", len(left.Items), err)
	}
}

// The chart's Grafana dashboard queries the interruption metrics by their
// exported names and labels.
func TestDashboardInterruptionPanels(t *testing.T) {
	panels := dashboard.Panels(t, "../../..")
	exported := map[string]string{} // name -> its label
	for c, label := range map[prometheus.Collector]string{interruption.ReceivedMessages: "message_type", interruption.Actions: "action"} {
		exported[dashboard.MetricName(t, c)] = label
	}
	used := map[string]bool{}
	for _, p := range panels {
		for _, target := range p.Targets {
			for _, name := range regexp.MustCompile(`karpenter_gpu_interruption_[a-z_]+`).FindAllString(target.Expr, -1) {
				label, ok := exported[name]
				if !ok {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, name)
					continue
				}
				if !strings.Contains(target.Expr, "by ("+label+")") {
					t.Errorf("panel %q: %q does not group by %s", p.Title, target.Expr, label)
				}
				used[name] = true
			}
		}
	}
	if len(used) != len(exported) {
		t.Errorf("dashboard queries %v; want %v", used, exported)
	}
}
