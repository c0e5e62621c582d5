package instance

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// gatherer is the one batching primitive of the CreateFleet paths (the
// fleet batcher, batch.go, and the gang collector, gang_batch.go): members
// join a pending batch by key; the batch is flushed exactly once, when its
// timer fires or as soon as a member fills it, and leaves the pending set
// as it flushes, so later members start a new batch. Flushing runs outside
// the lock on the batch's value, which no member changes any more.
type gatherer[T any] struct {
	mu      sync.Mutex
	pending map[string]*gathered[T]
	// flush makes the calls of one batch and answers its members.
	flush func(key string, v *T)
}

type gathered[T any] struct {
	v       T
	timer   *time.Timer
	started time.Time
	closed  bool
}

func newGatherer[T any](flush func(key string, v *T)) *gatherer[T] {
	return &gatherer[T]{pending: map[string]*gathered[T]{}, flush: flush}
}

// join adds a member to the pending batch of key, a new one if there is
// none, by calling add under the lock with the batch's value, whether the
// batch is new and how long ago it started. add returns whether the batch
// is now full (it flushes at once) and how long to wait before flushing:
// a new batch's timer is set to it; an existing batch's is reset to it
// unless it is negative (the timer stays as it was).
func (g *gatherer[T]) join(key string, add func(v *T, fresh bool, age time.Duration) (full bool, wait time.Duration)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.pending[key]
	if !ok {
		b = &gathered[T]{started: time.Now()}
		g.pending[key] = b
	}
	full, wait := add(&b.v, !ok, time.Since(b.started))
	switch {
	case !ok:
		b.timer = time.AfterFunc(wait, func() { g.flushOnce(key, b) })
	case wait >= 0:
		b.timer.Reset(wait)
	}
	if full {
		b.timer.Stop()
		go g.flushOnce(key, b)
	}
}

func (g *gatherer[T]) flushOnce(key string, b *gathered[T]) {
	g.mu.Lock()
	if b.closed {
		g.mu.Unlock()
		return
	}
	b.closed = true
	if g.pending[key] == b {
		delete(g.pending, key)
	}
	g.mu.Unlock()
	g.flush(key, &b.v)
}

// batchMember is one launch waiting in a batch.
type batchMember struct {
	ctx   context.Context
	token string
	tags  map[string]string // per-claim tags
	done  chan batchAnswer
}

type batchAnswer struct {
	out *ec2.CreateFleetOutput
	err error
}

// await is the member's answer, or its context's error if that ends first.
func (m *batchMember) await() (*ec2.CreateFleetOutput, error) {
	select {
	case a := <-m.done:
		return a.out, a.err
	case <-m.ctx.Done():
		return nil, m.ctx.Err()
	}
}

// answerAll gives every member the same answer.
func answerAll(members []*batchMember, a batchAnswer) {
	for _, m := range members {
		m.done <- a
	}
}
