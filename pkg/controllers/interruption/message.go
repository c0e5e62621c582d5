package interruption

import (
	"context"
	"time"
)

// Kind is what a queue message announces. Its values are the message_type
// label of karpenter_gpu_interruption_received_messages_total.
type Kind string

const (
	// KindSpotInterruption: the two-minute spot interruption warning.
	KindSpotInterruption Kind = "spot_interrupted"
	// KindRebalanceRecommendation: EC2 sees an elevated risk of spot
	// interruption. Recorded as an event, no action (Karpenter for AWS's
	// default).
	KindRebalanceRecommendation Kind = "rebalance_recommendation"
	// KindCapacityReservationInterruption: the instance's interruptible
	// capacity reservation is reclaimed by its owner (two-minute warning).
	KindCapacityReservationInterruption Kind = "capacity_reservation_interrupted"
	// KindScheduledChange: an AWS Health scheduled change (retirement,
	// maintenance) of the instance.
	KindScheduledChange Kind = "scheduled_change"
	// KindStateChange: the instance is stopping, stopped, shutting down or
	// terminated.
	KindStateChange Kind = "state_change"
	// KindNoOp: a well-formed event that asks for nothing (a state change
	// to pending or running, a Health event of another service or
	// category).
	KindNoOp Kind = "no_op"
	// KindUnknown: a well-formed event of a source or detail-type the
	// handler does not know (an EventBridge rule sends more than the
	// documented ones).
	KindUnknown Kind = "unknown"
	// KindMalformed: a body that is not an EventBridge event, or one of a
	// known kind without the instance it is about.
	KindMalformed Kind = "malformed"
)

// Instance states of a KindStateChange message that lead to the NodeClaim's
// deletion; a queue reports other states as KindNoOp.
const (
	StateStopping     = "stopping"
	StateStopped      = "stopped"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
)

// Message is one queue message, parsed by the queue.
type Message struct {
	// ID is the queue's message ID (for logs).
	ID string
	// Handle is what Queue.Delete needs to delete the message (the SQS
	// receipt handle).
	Handle string
	Kind   Kind
	// InstanceIDs are the EC2 instances (i-...) the event is about.
	InstanceIDs []string
	// State is the instance's new state (KindStateChange).
	State string
	// Time is when the event happened (zero when the body has none).
	Time time.Time
	// Err says why the body could not be understood (KindMalformed,
	// KindUnknown).
	Err error
}

// Queue is the interruption queue the controller polls (providers/aws/sqs
// serves an SQS queue fed by EventBridge).
type Queue interface {
	// Name is the queue's name (for logs).
	Name() string
	// Receive waits for and returns the next messages, up to the queue's
	// batch size; none when the wait ends empty. A message it returns is
	// hidden from other receivers until Delete or its visibility timeout.
	Receive(ctx context.Context) ([]Message, error)
	// Delete removes a received message from the queue.
	Delete(ctx context.Context, m Message) error
}
