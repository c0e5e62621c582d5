package sqs_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awstest"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/sqs"
)

const (
	region = "us-east-1"
	name   = "karpenter-gpu-unit"
	inst   = "i-0123456789abcdef0"
	inst2  = "i-0fedcba9876543210"
)

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// endpoint is a fakeaws server with the queue, and the production SDK
// client pointed at it (static credentials, this repo's retryer).
func endpoint(t *testing.T) (*fakeaws.Server, *awssqs.Client) {
	t.Helper()
	srv := fakeaws.New(fakeaws.Inventory{Region: region})
	t.Cleanup(srv.Close)
	srv.SetClock(func() time.Time { return at })
	srv.CreateQueue(name)
	return srv, sqs.NewClient(awstest.Config(t), srv.URL)
}

func newQueue(t *testing.T, client sqs.API, o sqs.Options) *sqs.Queue {
	t.Helper()
	o.Client = client
	if o.QueueName == "" {
		o.QueueName = name
	}
	if o.WaitTime == 0 {
		o.WaitTime = -1 // no long poll unless the test asks
	}
	q, err := sqs.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func send(t *testing.T, srv *fakeaws.Server, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := srv.SendMessage(name, b); err != nil {
			t.Fatal(err)
		}
	}
}

// Every event kind through the real SDK: the body EventBridge delivers,
// received, parsed and deleted.
func TestReceiveParsesEachKind(t *testing.T) {
	healthOther := strings.Replace(fakeaws.ScheduledChangeEvent(region, at, inst), `"eventTypeCategory":"scheduledChange"`, `"eventTypeCategory":"issue"`, 1)
	sns, _ := json.Marshal(map[string]string{"Type": "Notification", "Message": fakeaws.SpotInterruptionEvent(region, inst, at)})
	for _, tc := range []struct {
		name  string
		body  string
		kind  interruption.Kind
		ids   []string
		state string
		err   string // in Message.Err
	}{
		{name: "spot interruption warning", body: fakeaws.SpotInterruptionEvent(region, inst, at), kind: interruption.KindSpotInterruption, ids: []string{inst}},
		{name: "capacity reservation interruption warning", body: fakeaws.CapacityReservationInterruptionEvent(region, inst, at), kind: interruption.KindCapacityReservationInterruption, ids: []string{inst}},
		{name: "rebalance recommendation", body: fakeaws.RebalanceRecommendationEvent(region, inst, at), kind: interruption.KindRebalanceRecommendation, ids: []string{inst}},
		{name: "stopping", body: fakeaws.StateChangeEvent(region, inst, "stopping", at), kind: interruption.KindStateChange, ids: []string{inst}, state: "stopping"},
		{name: "stopped", body: fakeaws.StateChangeEvent(region, inst, "stopped", at), kind: interruption.KindStateChange, ids: []string{inst}, state: "stopped"},
		{name: "shutting-down", body: fakeaws.StateChangeEvent(region, inst, "shutting-down", at), kind: interruption.KindStateChange, ids: []string{inst}, state: "shutting-down"},
		{name: "terminated", body: fakeaws.StateChangeEvent(region, inst, "terminated", at), kind: interruption.KindStateChange, ids: []string{inst}, state: "terminated"},
		{name: "running is no-op", body: fakeaws.StateChangeEvent(region, inst, "running", at), kind: interruption.KindNoOp, ids: []string{inst}, state: "running"},
		{name: "scheduled change of two instances", body: fakeaws.ScheduledChangeEvent(region, at, inst, inst2), kind: interruption.KindScheduledChange, ids: []string{inst, inst2}},
		{name: "health issue is no-op", body: healthOther, kind: interruption.KindNoOp},
		{name: "instance from resources when detail has none", body: strings.Replace(fakeaws.SpotInterruptionEvent(region, inst, at), `"instance-id":"`+inst+`",`, "", 1),
			kind: interruption.KindSpotInterruption, ids: []string{inst}},
		{name: "not JSON", body: "hello", kind: interruption.KindMalformed, err: "not an EventBridge event"},
		{name: "JSON but no event", body: `{"foo":1}`, kind: interruption.KindMalformed, err: "no detail-type or source"},
		{name: "SNS envelope", body: string(sns), kind: interruption.KindMalformed, err: "not an EventBridge event"},
		{name: "spot warning without instance", body: `{"version":"0","id":"x","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2","resources":[],"detail":{}}`,
			kind: interruption.KindMalformed, err: "names no EC2 instance"},
		{name: "bad instance id", body: strings.ReplaceAll(fakeaws.SpotInterruptionEvent(region, inst, at), inst, "i-xyz"), kind: interruption.KindMalformed, err: "names no EC2 instance"},
		{name: "detail not an object", body: `{"detail-type":"EC2 Instance Rebalance Recommendation","source":"aws.ec2","detail":"oops"}`, kind: interruption.KindMalformed, err: "detail is not an object"},
		{name: "state change without state", body: `{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"` + inst + `"}}`, kind: interruption.KindMalformed, err: "no detail.state"},
		{name: "unknown detail-type", body: `{"detail-type":"EC2 Fleet Error","source":"aws.ec2","detail":{}}`, kind: interruption.KindUnknown, err: `detail-type "EC2 Fleet Error"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, client := endpoint(t)
			q := newQueue(t, client, sqs.Options{})
			send(t, srv, tc.body)
			msgs, err := q.Receive(context.Background())
			if err != nil || len(msgs) != 1 {
				t.Fatalf("Receive = %d messages, %v; want 1", len(msgs), err)
			}
			m := msgs[0]
			if m.Kind != tc.kind || !slices.Equal(m.InstanceIDs, tc.ids) || m.State != tc.state {
				t.Errorf("parsed %s %v %q, want %s %v %q", m.Kind, m.InstanceIDs, m.State, tc.kind, tc.ids, tc.state)
			}
			if (tc.err == "") != (m.Err == nil) || (m.Err != nil && !strings.Contains(m.Err.Error(), tc.err)) {
				t.Errorf("Err = %v, want one containing %q", m.Err, tc.err)
			}
			if !m.Time.Equal(at) {
				t.Errorf("Time = %s, want %s (the event's, else SentTimestamp)", m.Time, at)
			}
			if m.ID == "" || m.Handle == "" {
				t.Errorf("ID %q, handle %q: want both", m.ID, m.Handle)
			}
			if err := q.Delete(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if left := srv.QueueMessages(name); len(left) != 0 {
				t.Errorf("messages left after Delete: %v", left)
			}
		})
	}
}

// A batch, the URL looked up once, long polling asked of SQS, and a message
// not deleted received again after its visibility timeout.
func TestReceiveBatchVisibilityAndDelete(t *testing.T) {
	srv, client := endpoint(t)
	q := newQueue(t, client, sqs.Options{MaxMessages: 2, VisibilityTimeout: 45 * time.Second})
	send(t, srv, fakeaws.SpotInterruptionEvent(region, inst, at), fakeaws.RebalanceRecommendationEvent(region, inst, at), fakeaws.SpotInterruptionEvent(region, inst2, at))
	ctx := context.Background()
	first, err := q.Receive(ctx)
	if err != nil || len(first) != 2 {
		t.Fatalf("first Receive = %d, %v; want the batch of 2", len(first), err)
	}
	second, err := q.Receive(ctx)
	if err != nil || len(second) != 1 || second[0].InstanceIDs[0] != inst2 {
		t.Fatalf("second Receive = %+v, %v; want the third message only (the first two are in flight)", second, err)
	}
	if err := q.Delete(ctx, first[0]); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ctx, first[0]); err != nil {
		t.Errorf("deleting a message twice: %v (SQS accepts it)", err)
	}
	if again, err := q.Receive(ctx); err != nil || len(again) != 0 {
		t.Errorf("Receive within the visibility timeout = %d, %v; want none", len(again), err)
	}
	srv.SetClock(func() time.Time { return at.Add(46 * time.Second) })
	again, err := q.Receive(ctx)
	if err != nil || len(again) != 2 || again[0].Kind != interruption.KindRebalanceRecommendation || again[0].Handle == first[1].Handle {
		t.Fatalf("Receive after the visibility timeout = %+v, %v; want the 2 undeleted messages with new handles", again, err)
	}
	left := srv.QueueMessages(name)
	if len(left) != 2 || left[0].Receives != 2 {
		t.Errorf("queue %+v; want 2 messages, the first received twice", left)
	}
	if n := len(srv.Requests("GetQueueUrl")); n != 1 {
		t.Errorf("GetQueueUrl called %d times, want 1 (cached)", n)
	}
	var in map[string]any
	if err := json.Unmarshal([]byte(srv.Requests("ReceiveMessage")[0].Form.Get("body")), &in); err != nil {
		t.Fatal(err)
	}
	if in["MaxNumberOfMessages"] != 2.0 || in["VisibilityTimeout"] != 45.0 || in["QueueUrl"] != srv.URL+"/"+fakeaws.SQSAccount+"/"+name {
		t.Errorf("ReceiveMessage request %v", in)
	}
}

// Long polling: a receive waits for a message and returns as soon as one
// arrives, and a receive of an empty queue ends empty after the wait.
func TestLongPoll(t *testing.T) {
	srv, client := endpoint(t)
	q := newQueue(t, client, sqs.Options{WaitTime: 5 * time.Second})
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = srv.SendMessage(name, fakeaws.SpotInterruptionEvent(region, inst, at))
	}()
	start := time.Now()
	msgs, err := q.Receive(context.Background())
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %d, %v; want the message sent during the wait", len(msgs), err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("Receive took %s; want it to wait for the message and return when it came", d)
	}
	var in map[string]any
	_ = json.Unmarshal([]byte(srv.Requests("ReceiveMessage")[0].Form.Get("body")), &in)
	if in["WaitTimeSeconds"] != 5.0 {
		t.Errorf("WaitTimeSeconds = %v, want 5", in["WaitTimeSeconds"])
	}
	q = newQueue(t, client, sqs.Options{WaitTime: time.Second})
	start = time.Now()
	if msgs, err := q.Receive(context.Background()); err != nil || len(msgs) != 0 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("Receive of an empty queue = %d, %v after %s; want none after the 1s wait", len(msgs), err, time.Since(start))
	}
}

// A missing queue is a clear error naming it (and what to do), for
// receive and delete.
func TestQueueNotFound(t *testing.T) {
	_, client := endpoint(t)
	q := newQueue(t, client, sqs.Options{QueueName: "missing"})
	_, err := q.Receive(context.Background())
	if err == nil || !sqs.IsQueueNotFound(err) || !strings.Contains(err.Error(), `interruption queue "missing": the queue does not exist`) {
		t.Fatalf("Receive error %v, want a queue-not-found error naming the queue", err)
	}
	if err := q.Delete(context.Background(), interruption.Message{ID: "m", Handle: "rh-x"}); err == nil || !sqs.IsQueueNotFound(err) {
		t.Errorf("Delete error %v, want queue not found", err)
	}
}

// A queue deleted after its URL was cached: the error says so and the URL is
// looked up again next time (the queue may be recreated).
func TestQueueDeletedAfterLookup(t *testing.T) {
	srv, client := endpoint(t)
	q := newQueue(t, client, sqs.Options{})
	if _, err := q.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Fail("ReceiveMessage", "QueueDoesNotExist", "The specified queue does not exist.", 1)
	if _, err := q.Receive(context.Background()); !sqs.IsQueueNotFound(err) {
		t.Fatalf("Receive error %v, want queue not found", err)
	}
	if _, err := q.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests("GetQueueUrl")); n != 2 {
		t.Errorf("GetQueueUrl called %d times, want 2 (looked up again)", n)
	}
}

// Throttling is retried by the SDK's retryer; other errors surface.
func TestErrors(t *testing.T) {
	srv, client := endpoint(t)
	q := newQueue(t, client, sqs.Options{})
	send(t, srv, fakeaws.SpotInterruptionEvent(region, inst, at))
	srv.Throttle("ReceiveMessage", 1)
	msgs, err := q.Receive(context.Background())
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive after a throttle = %d, %v; want the message (retried)", len(msgs), err)
	}
	if err := q.Delete(context.Background(), interruption.Message{ID: "m", Handle: "garbage"}); err == nil || !strings.Contains(err.Error(), "ReceiptHandleIsInvalid") {
		t.Errorf("Delete with a bad handle: %v, want ReceiptHandleIsInvalid", err)
	}
	srv.Fail("DeleteMessage", "AccessDenied", "not authorized to perform sqs:DeleteMessage", 1)
	if err := q.Delete(context.Background(), msgs[0]); err == nil || !strings.Contains(err.Error(), "sqs:DeleteMessage") || !strings.Contains(err.Error(), `deleting message `+msgs[0].ID) {
		t.Errorf("Delete error %v, want the access denial", err)
	}
	if len(srv.QueueMessages(name)) != 1 {
		t.Errorf("the message was deleted despite the failure")
	}
}

func TestNewValidates(t *testing.T) {
	_, client := endpoint(t)
	for _, tc := range []struct {
		o   sqs.Options
		err string
	}{
		{sqs.Options{QueueName: ""}, "not an SQS standard queue name"},
		{sqs.Options{QueueName: "https://sqs.us-east-1.amazonaws.com/123456789012/q"}, "a name, not a URL"},
		{sqs.Options{QueueName: strings.Repeat("q", 81)}, "not an SQS standard queue name"},
		{sqs.Options{QueueName: "q", MaxMessages: 11}, "not between 1 and 10"},
		{sqs.Options{QueueName: "q", WaitTime: 21 * time.Second}, "over SQS's 20s"},
		{sqs.Options{QueueName: "q", VisibilityTimeout: 13 * time.Hour}, "not between 0 and 12h"},
	} {
		tc.o.Client = client
		if _, err := sqs.New(tc.o); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%+v) error %v, want %q", tc.o, err, tc.err)
		}
	}
	if _, err := sqs.New(sqs.Options{QueueName: "q"}); err == nil {
		t.Error("New without a client: no error")
	}
}

// Parse never panics, whatever the body.
func FuzzParse(f *testing.F) {
	for _, b := range []string{fakeaws.SpotInterruptionEvent(region, inst, at), fakeaws.ScheduledChangeEvent(region, at, inst), fakeaws.StateChangeEvent(region, inst, "stopped", at), "", "{}", "null", `{"detail-type":1}`} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m := sqs.Parse(body)
		if (m.Kind == interruption.KindMalformed || m.Kind == interruption.KindUnknown) != (m.Err != nil) {
			t.Errorf("kind %s with Err %v", m.Kind, m.Err)
		}
		if lo.Contains([]interruption.Kind{interruption.KindSpotInterruption, interruption.KindRebalanceRecommendation, interruption.KindScheduledChange, interruption.KindStateChange}, m.Kind) && len(m.InstanceIDs) == 0 {
			t.Errorf("kind %s without instances", m.Kind)
		}
	})
}

// Answers lost after SQS acted: a lost DeleteMessage answer is retried by
// the SDK and the second delete of the same handle succeeds; a lost
// ReceiveMessage answer leaves the message in flight, and it is received
// again after its visibility timeout, as with SQS.
func TestLostAnswers(t *testing.T) {
	srv, client := endpoint(t)
	q := newQueue(t, client, sqs.Options{})
	send(t, srv, fakeaws.SpotInterruptionEvent(region, inst, at))
	ctx := context.Background()

	srv.ResetConnections("ReceiveMessage", 1)
	msgs, err := q.Receive(ctx)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("Receive after a lost answer = %d, %v; want none (the message is in flight)", len(msgs), err)
	}
	if n := srv.Faults()[fakeaws.FaultConnectionReset]; n != 1 {
		t.Fatalf("connection resets served: %d, want 1", n)
	}
	srv.SetClock(func() time.Time { return at.Add(fakeaws.DefaultSQSVisibilityTimeout + time.Second) })
	if msgs, err = q.Receive(ctx); err != nil || len(msgs) != 1 {
		t.Fatalf("Receive after the visibility timeout = %d, %v; want the message", len(msgs), err)
	}

	srv.LoseResponses("DeleteMessage", 1)
	if err := q.Delete(ctx, msgs[0]); err != nil {
		t.Fatalf("Delete with a lost answer: %v (the SDK retries; deleting twice is fine)", err)
	}
	if n := len(srv.Requests("DeleteMessage")); n != 2 {
		t.Errorf("DeleteMessage sent %d times, want 2 (the retry)", n)
	}
	if left := srv.QueueMessages(name); len(left) != 0 {
		t.Errorf("messages left: %v", left)
	}
}
