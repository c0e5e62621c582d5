// Package sqs is karpenter-gpu's interruption queue on AWS: an SQS queue,
// fed by EventBridge rules for EC2 spot interruption warnings, rebalance
// recommendations, instance state changes and AWS Health scheduled changes,
// read with the aws-sdk-go-v2 SQS client (long polling) and parsed into the
// messages of pkg/controllers/interruption.
//
// The queue must be karpenter-gpu's own: SQS hands each message to one
// receiver, so two handlers on one queue (karpenter-gpu and Karpenter for
// AWS) would each miss the other's events (charts/karpenter-gpu/README.md).
package sqs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
)

// API is the part of the SDK's SQS client the queue calls (*sqs.Client).
type API interface {
	GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error)
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *awssqs.DeleteMessageInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageOutput, error)
}

// Defaults of Options.
const (
	DefaultMaxMessages = 10
	DefaultWaitTime    = 20 * time.Second
)

// Options configure a Queue.
type Options struct {
	Client API
	// QueueName is the queue's name (not its URL): 1 to 80 letters, digits,
	// hyphens and underscores.
	QueueName string
	// MaxMessages is the batch size of a receive, 1 to 10; 0 means
	// DefaultMaxMessages.
	MaxMessages int32
	// WaitTime is the long poll of a receive, at most 20s; 0 means
	// DefaultWaitTime, negative no wait.
	WaitTime time.Duration
	// VisibilityTimeout hides a received message from other receives until
	// it is deleted or the timeout passes; 0 keeps the queue's.
	VisibilityTimeout time.Duration
}

// Queue is an SQS interruption queue (interruption.Queue).
type Queue struct {
	opts Options

	mu  sync.Mutex
	url string
}

var queueName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// NewClient returns the SDK's SQS client for cfg (the config of
// providers/aws.LoadConfig); endpoint, when set, overrides the service
// endpoint (tests point it at providers/aws/fakeaws).
func NewClient(cfg awssdk.Config, endpoint string) *awssqs.Client {
	return awssqs.NewFromConfig(cfg, func(o *awssqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = awssdk.String(endpoint)
		}
	})
}

// New validates o and returns the queue; its URL is looked up on first use.
func New(o Options) (*Queue, error) {
	if o.Client == nil {
		return nil, errors.New("sqs: no client")
	}
	if !queueName.MatchString(o.QueueName) {
		return nil, fmt.Errorf("interruption queue name %q is not an SQS standard queue name (1 to 80 letters, digits, hyphens and underscores; a name, not a URL or ARN)", o.QueueName)
	}
	if o.MaxMessages == 0 {
		o.MaxMessages = DefaultMaxMessages
	}
	if o.MaxMessages < 1 || o.MaxMessages > 10 {
		return nil, fmt.Errorf("interruption queue batch size %d is not between 1 and 10", o.MaxMessages)
	}
	switch {
	case o.WaitTime == 0:
		o.WaitTime = DefaultWaitTime
	case o.WaitTime < 0:
		o.WaitTime = 0
	case o.WaitTime > 20*time.Second:
		return nil, fmt.Errorf("interruption queue wait time %s is over SQS's 20s", o.WaitTime)
	}
	if o.VisibilityTimeout < 0 || o.VisibilityTimeout > 12*time.Hour {
		return nil, fmt.Errorf("interruption queue visibility timeout %s is not between 0 and 12h", o.VisibilityTimeout)
	}
	return &Queue{opts: o}, nil
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.opts.QueueName }

// IsQueueNotFound reports whether err is (or wraps) SQS's answer that the
// queue does not exist.
func IsQueueNotFound(err error) bool {
	var nf *sqstypes.QueueDoesNotExist
	return errors.As(err, &nf)
}

// URL returns the queue's URL (GetQueueUrl, cached).
func (q *Queue) URL(ctx context.Context) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.url != "" {
		return q.url, nil
	}
	out, err := q.opts.Client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: awssdk.String(q.opts.QueueName)})
	if err != nil {
		return "", q.explain("getting the URL of", err)
	}
	q.url = awssdk.ToString(out.QueueUrl)
	return q.url, nil
}

// explain wraps err; a missing queue gets a hint, and the cached URL is
// dropped (the queue may be recreated).
func (q *Queue) explain(what string, err error) error {
	var nf *sqstypes.QueueDoesNotExist
	if errors.As(err, &nf) {
		q.url = ""
		return fmt.Errorf("%s interruption queue %q: the queue does not exist in this account and region; create it and its EventBridge rules (charts/karpenter-gpu/README.md) or unset the interruption queue, %w", what, q.opts.QueueName, err)
	}
	return fmt.Errorf("%s interruption queue %q, %w", what, q.opts.QueueName, err)
}

// Receive long-polls for the next batch and parses each message (Parse);
// the message time is the event's, else the queue's SentTimestamp.
func (q *Queue) Receive(ctx context.Context) ([]interruption.Message, error) {
	url, err := q.URL(ctx)
	if err != nil {
		return nil, err
	}
	in := &awssqs.ReceiveMessageInput{
		QueueUrl:                    awssdk.String(url),
		MaxNumberOfMessages:         q.opts.MaxMessages,
		WaitTimeSeconds:             int32(q.opts.WaitTime / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameSentTimestamp},
	}
	if q.opts.VisibilityTimeout > 0 {
		in.VisibilityTimeout = int32(q.opts.VisibilityTimeout / time.Second)
	}
	out, err := q.opts.Client.ReceiveMessage(ctx, in)
	if err != nil {
		q.mu.Lock()
		defer q.mu.Unlock()
		return nil, q.explain("receiving from", err)
	}
	msgs := make([]interruption.Message, 0, len(out.Messages))
	for _, raw := range out.Messages {
		m := Parse(awssdk.ToString(raw.Body))
		m.ID, m.Handle = awssdk.ToString(raw.MessageId), awssdk.ToString(raw.ReceiptHandle)
		if m.Time.IsZero() {
			if ms, err := strconv.ParseInt(raw.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
				m.Time = time.UnixMilli(ms)
			}
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// Delete deletes a received message.
func (q *Queue) Delete(ctx context.Context, m interruption.Message) error {
	url, err := q.URL(ctx)
	if err != nil {
		return err
	}
	if _, err := q.opts.Client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: awssdk.String(url), ReceiptHandle: awssdk.String(m.Handle)}); err != nil {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.explain(fmt.Sprintf("deleting message %s from", m.ID), err)
	}
	return nil
}

var _ interruption.Queue = (*Queue)(nil)
