package fakeaws

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ---- SQS: the AWS JSON 1.0 protocol ------------------------------------------
//
// aws-sdk-go-v2's SQS client (service/sqs v1.53) sends POST / with
// Content-Type application/x-amz-json-1.0, X-Amz-Target AmazonSQS.<Action>
// and X-Amzn-Query-Mode: true; errors are {"__type":
// "com.amazonaws.sqs#<Code>", "message": ...} with the legacy Query code in
// the X-Amzn-Query-Error header ("<Code>;Sender"), which the client puts in
// ErrorCode(). ReceiveMessage answers are checked against MD5OfBody by the
// client, so the server computes it as SQS does.
//
// Served: GetQueueUrl, ReceiveMessage (batch size 1–10, visibility timeout,
// long polling that returns as soon as a message arrives), DeleteMessage.
// Queues and messages are made with CreateQueue and SendMessage (Go calls,
// as EventBridge would deliver them).

// SQSAccount is the account ID in the fake queue URLs.
const SQSAccount = "000000000000"

// DefaultSQSVisibilityTimeout is a new queue's visibility timeout, as SQS's.
const DefaultSQSVisibilityTimeout = 30 * time.Second

// SQSMessage is a message in a queue (received or not, not deleted).
type SQSMessage struct {
	ID, Body string
	Sent     time.Time
	// Receives counts the times it was received.
	Receives int
}

type sqsMessage struct {
	SQSMessage
	handles        []string // receipt handles issued, the last one current
	invisibleUntil time.Time
}

type sqsQueue struct {
	name       string
	visibility time.Duration
	msgs       []*sqsMessage
}

// sqsState is the server's SQS side; arrived is closed (and replaced) when
// a message is sent, waking long polls.
type sqsState struct {
	queues  map[string]*sqsQueue
	arrived chan struct{}
}

func (s *Server) sqsInit() {
	if s.sqs.queues == nil {
		s.sqs.queues = map[string]*sqsQueue{}
		s.sqs.arrived = make(chan struct{})
	}
}

// CreateQueue creates a queue (a no-op when it exists) and returns its URL.
func (s *Server) CreateQueue(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sqsInit()
	if _, ok := s.sqs.queues[name]; !ok {
		s.sqs.queues[name] = &sqsQueue{name: name, visibility: DefaultSQSVisibilityTimeout}
	}
	return s.queueURL(name)
}

// SetQueueVisibilityTimeout sets a queue's default visibility timeout.
func (s *Server) SetQueueVisibilityTimeout(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sqsInit()
	if q, ok := s.sqs.queues[name]; ok {
		q.visibility = d
	}
}

func (s *Server) queueURL(name string) string {
	return s.URL + "/" + SQSAccount + "/" + name
}

// SendMessage puts a message in a queue, as EventBridge delivers an event,
// and returns its ID.
func (s *Server) SendMessage(queue, body string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sqsInit()
	q, ok := s.sqs.queues[queue]
	if !ok {
		return "", fmt.Errorf("fakeaws: no queue %q", queue)
	}
	id := s.id("msg-")
	q.msgs = append(q.msgs, &sqsMessage{SQSMessage: SQSMessage{ID: id, Body: body, Sent: s.now()}})
	close(s.sqs.arrived)
	s.sqs.arrived = make(chan struct{})
	return id, nil
}

// QueueMessages returns the messages of a queue not deleted, in send order.
func (s *Server) QueueMessages(queue string) []SQSMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sqsInit()
	q, ok := s.sqs.queues[queue]
	if !ok {
		return nil
	}
	out := make([]SQSMessage, 0, len(q.msgs))
	for _, m := range q.msgs {
		out = append(out, m.SQSMessage)
	}
	return out
}

type sqsError struct {
	code, queryCode, message string
	status                   int
}

func writeSQSError(w http.ResponseWriter, e sqsError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if e.queryCode != "" {
		w.Header().Set("X-Amzn-Query-Error", e.queryCode+";Sender")
	}
	if e.status == 0 {
		e.status = http.StatusBadRequest
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.message})
}

func queueDoesNotExist() *sqsError {
	return &sqsError{code: "QueueDoesNotExist", queryCode: "AWS.SimpleQueueService.NonExistentQueue", message: "The specified queue does not exist."}
}

// serveSQS answers one AmazonSQS.<action> call. It takes the server's lock
// itself: a long poll waits without it.
func (s *Server) serveSQS(w http.ResponseWriter, r *http.Request, action string, body []byte) {
	s.mu.Lock()
	s.sqsInit()
	s.requests = append(s.requests, Request{Service: "sqs", Action: action, Form: url.Values{"body": {string(body)}}})
	if e, ok := s.injected(action); ok {
		s.mu.Unlock()
		code := e.code
		if code == "RequestLimitExceeded" {
			code = "RequestThrottled"
		}
		writeSQSError(w, sqsError{code: code, message: e.message, status: e.status})
		return
	}
	s.mu.Unlock()
	var in struct {
		QueueName, QueueUrl, ReceiptHandle   string
		MaxNumberOfMessages, WaitTimeSeconds *int
		VisibilityTimeout                    *int
		AttributeNames                       []string
		MessageSystemAttributeNames          []string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeSQSError(w, sqsError{code: "SerializationException", message: err.Error()})
		return
	}
	var out any
	var serr *sqsError
	switch action {
	case "GetQueueUrl":
		out, serr = s.getQueueURL(in.QueueName)
	case "ReceiveMessage":
		out, serr = s.receiveMessage(r, in.QueueUrl, in.MaxNumberOfMessages, in.WaitTimeSeconds, in.VisibilityTimeout, len(in.AttributeNames)+len(in.MessageSystemAttributeNames) > 0)
	case "DeleteMessage":
		out, serr = s.deleteMessage(in.QueueUrl, in.ReceiptHandle)
	default:
		serr = &sqsError{code: "UnsupportedOperation", message: "fakeaws does not serve AmazonSQS." + action}
	}
	if serr != nil {
		writeSQSError(w, *serr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) getQueueURL(name string) (any, *sqsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sqs.queues[name]; !ok {
		return nil, queueDoesNotExist()
	}
	return map[string]string{"QueueUrl": s.queueURL(name)}, nil
}

// queueOf returns the queue a QueueUrl names (its last path segment).
func (s *Server) queueOf(queueURL string) (*sqsQueue, *sqsError) {
	u, err := url.Parse(queueURL)
	if queueURL == "" || err != nil {
		return nil, &sqsError{code: "InvalidAddress", queryCode: "InvalidAddress", message: fmt.Sprintf("The address %q is not valid for this endpoint.", queueURL)}
	}
	q, ok := s.sqs.queues[u.Path[strings.LastIndex(u.Path, "/")+1:]]
	if !ok {
		return nil, queueDoesNotExist()
	}
	return q, nil
}

func (s *Server) receiveMessage(r *http.Request, queueURL string, maxN, wait, visibility *int, attributes bool) (any, *sqsError) {
	n := 1
	if maxN != nil {
		n = *maxN
	}
	if n < 1 || n > 10 {
		return nil, &sqsError{code: "InvalidParameterValue", queryCode: "InvalidParameterValue", message: fmt.Sprintf("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", n)}
	}
	waitFor := time.Duration(0)
	if wait != nil {
		if *wait < 0 || *wait > 20 {
			return nil, &sqsError{code: "InvalidParameterValue", queryCode: "InvalidParameterValue", message: fmt.Sprintf("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *wait)}
		}
		waitFor = time.Duration(*wait) * time.Second
	}
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		q, serr := s.queueOf(queueURL)
		if serr != nil {
			s.mu.Unlock()
			return nil, serr
		}
		vt := q.visibility
		if visibility != nil {
			vt = time.Duration(*visibility) * time.Second
		}
		now := s.now()
		var out []map[string]any
		for _, m := range q.msgs {
			if len(out) == n {
				break
			}
			if now.Before(m.invisibleUntil) {
				continue
			}
			m.Receives++
			m.invisibleUntil = now.Add(vt)
			handle := fmt.Sprintf("rh-%s-%d", m.ID, m.Receives)
			m.handles = append(m.handles, handle)
			sum := md5.Sum([]byte(m.Body))
			msg := map[string]any{"MessageId": m.ID, "ReceiptHandle": handle, "MD5OfBody": hex.EncodeToString(sum[:]), "Body": m.Body}
			if attributes {
				msg["Attributes"] = map[string]string{
					"SentTimestamp":           strconv.FormatInt(m.Sent.UnixMilli(), 10),
					"ApproximateReceiveCount": strconv.Itoa(m.Receives),
				}
			}
			out = append(out, msg)
		}
		arrived := s.sqs.arrived
		s.mu.Unlock()
		if len(out) > 0 {
			return map[string]any{"Messages": out}, nil
		}
		// Long poll: wait for a message, the end of the wait, or the
		// client going away; an empty answer is {} as SQS's.
		select {
		case <-arrived:
		case <-deadline.C:
			return map[string]any{}, nil
		case <-r.Context().Done():
			return map[string]any{}, nil
		}
	}
}

func (s *Server) deleteMessage(queueURL, handle string) (any, *sqsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, serr := s.queueOf(queueURL)
	if serr != nil {
		return nil, serr
	}
	if !strings.HasPrefix(handle, "rh-") {
		return nil, &sqsError{code: "ReceiptHandleIsInvalid", queryCode: "ReceiptHandleIsInvalid", message: fmt.Sprintf("The input receipt handle %q is not a valid receipt handle.", handle)}
	}
	// Deleting with any handle issued for the message works, and deleting a
	// message already deleted succeeds, as in SQS.
	q.msgs = slices.DeleteFunc(q.msgs, func(m *sqsMessage) bool { return slices.Contains(m.handles, handle) })
	return map[string]any{}, nil
}
