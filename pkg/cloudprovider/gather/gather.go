// Package gather is the one batching primitive of the backends' launch
// paths: launches that arrive one by one (Karpenter core calls
// CloudProvider.Create once per NodeClaim, concurrently) are gathered by
// key into one call to the cloud, and each caller gets its own answer.
//
// Gatherer is the primitive (the AWS CreateFleet batcher and both
// backends' gang collectors use it); Gangs is the gang rule on top of it,
// shared by providers/aws and providers/fake so a gang attempt's launches
// are collected the same way whatever the cloud: they wait for the whole
// gang from the first member on, and what has arrived when the wait ends
// launches as a gang of its own. It depends on nothing of the providers:
// they import it, never the reverse.
package gather

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Gatherer gathers members into pending batches by key; a batch is flushed
// exactly once, when its timer fires or as soon as a member fills it, and
// leaves the pending set as it flushes, so later members start a new
// batch. Flushing runs outside the lock on the batch's value, which no
// member changes any more.
type Gatherer[T any] struct {
	mu      sync.Mutex
	pending map[string]*batch[T]
	// flushing counts the batches closed but not yet flushed; done is
	// signalled (on mu) as each finishes.
	flushing int
	done     *sync.Cond
	// flush makes the calls of one batch and answers its members.
	flush func(key string, v *T)
}

type batch[T any] struct {
	v       T
	timer   *time.Timer
	started time.Time
	closed  bool
}

// New returns a Gatherer whose batches are flushed by flush.
func New[T any](flush func(key string, v *T)) *Gatherer[T] {
	g := &Gatherer[T]{pending: map[string]*batch[T]{}, flush: flush}
	g.done = sync.NewCond(&g.mu)
	return g
}

// Join adds a member to the pending batch of key, a new one if there is
// none, by calling add under the lock with the batch's value, whether the
// batch is new and how long ago it started. add returns whether the batch
// is now full (it flushes at once) and how long to wait before flushing:
// a new batch's timer is set to it; an existing batch's is reset to it
// unless it is negative (the timer stays as it was).
func (g *Gatherer[T]) Join(key string, add func(v *T, fresh bool, age time.Duration) (full bool, wait time.Duration)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.pending[key]
	if !ok {
		b = &batch[T]{started: time.Now()}
		g.pending[key] = b
	}
	full, wait := add(&b.v, !ok, time.Since(b.started))
	switch {
	case !ok:
		b.timer = time.AfterFunc(max(wait, 0), func() { g.flushOnce(key, b) })
	case wait >= 0:
		b.timer.Reset(wait)
	}
	if full {
		// It leaves the pending set now: a member that comes before the
		// flush runs starts a new batch rather than overfilling this one.
		b.timer.Stop()
		b.closed = true
		delete(g.pending, key)
		g.flushing++
		go g.flushClosed(key, b)
	}
}

// flushClosed flushes a batch closed under the lock (flushing counted).
func (g *Gatherer[T]) flushClosed(key string, b *batch[T]) {
	g.flush(key, &b.v)
	g.mu.Lock()
	g.flushing--
	g.done.Broadcast()
	g.mu.Unlock()
}

// Flush flushes every pending batch now, as if its timer fired, in key
// order, and returns once they and every batch already flushing (filled,
// or its timer fired) have been flushed: every member that joined before
// Flush has its answer. A caller that knows no more members are coming (a
// discrete-event simulation that handed over every member it has) needs
// not wait out the timers.
func (g *Gatherer[T]) Flush() {
	g.mu.Lock()
	keys := make([]string, 0, len(g.pending))
	for key := range g.pending {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	batches := make([]*batch[T], len(keys))
	for i, key := range keys {
		b := g.pending[key]
		b.timer.Stop()
		b.closed = true
		delete(g.pending, key)
		batches[i] = b
	}
	g.flushing += len(batches)
	g.mu.Unlock()
	for i, b := range batches {
		g.flushClosed(keys[i], b)
	}
	g.mu.Lock()
	for g.flushing > 0 {
		g.done.Wait()
	}
	g.mu.Unlock()
}

func (g *Gatherer[T]) flushOnce(key string, b *batch[T]) {
	g.mu.Lock()
	if b.closed {
		g.mu.Unlock()
		return
	}
	b.closed = true
	if g.pending[key] == b {
		delete(g.pending, key)
	}
	g.flushing++
	g.mu.Unlock()
	g.flushClosed(key, b)
}

// Observer is told when a member starts awaiting its reply (Reply.Await)
// under a context that carries it (WithObserver), and when it has its
// answer, before it goes on. A caller that hands members over itself (a
// discrete-event simulation) learns when every one of them waits for its
// batch or is done, and can Flush then rather than wait out the timers;
// Resumed may block, to let members go on one at a time.
type Observer interface {
	Waiting()
	Resumed()
}

type observerKey struct{}

// WithObserver returns ctx carrying o for the replies awaited within it.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// Reply is one member's answer: sent once by the flush, awaited by the
// member within its own context.
type Reply[A any] struct {
	ctx  context.Context
	done chan A
}

// NewReply returns a reply awaited within ctx.
func NewReply[A any](ctx context.Context) *Reply[A] {
	return &Reply[A]{ctx: ctx, done: make(chan A, 1)}
}

// Context is the member's context (a flush runs past it, on
// context.WithoutCancel of the first member's).
func (r *Reply[A]) Context() context.Context { return r.ctx }

// Send answers the member. A reply is answered once; it never blocks then,
// whether or not the member still waits.
func (r *Reply[A]) Send(a A) { r.done <- a }

// Await is the member's answer, or its context's error if that ends first.
func (r *Reply[A]) Await() (A, error) {
	if o, ok := r.ctx.Value(observerKey{}).(Observer); ok {
		o.Waiting()
		defer o.Resumed()
	}
	select {
	case a := <-r.done:
		return a, nil
	case <-r.ctx.Done():
		var zero A
		return zero, r.ctx.Err()
	}
}

// DefaultGangWait is how long the launches of a gang attempt wait for the
// rest of the gang before those that arrived launch as a gang of their own.
const DefaultGangWait = 10 * time.Second

// Gangs collects the launches of gang attempts. A gang's members are
// grouped by a sub-key (members with identical requests launch in one
// all-or-nothing call; a plan with several instance types or templates
// makes several), in arrival order.
type Gangs[M any] struct {
	wait    time.Duration
	batches *Gatherer[Gang[M]]
}

// Gang is the members of one gang attempt that have arrived.
type Gang[M any] struct {
	// Size is the gang's size; Arrived how many members came.
	Size, Arrived int
	// Order lists the sub-keys in the order their first member arrived.
	Order   []string
	Members map[string][]M
}

// NewGangs returns a collector whose gangs launch through flush, whole or
// after wait (DefaultGangWait when not positive) from their first member.
func NewGangs[M any](wait time.Duration, flush func(key string, g *Gang[M])) *Gangs[M] {
	if wait <= 0 {
		wait = DefaultGangWait
	}
	return &Gangs[M]{wait: wait, batches: New(flush)}
}

// Flush launches every gang waiting for the rest of its members now, with
// the members that arrived, as when the wait ends (Gatherer.Flush).
func (c *Gangs[M]) Flush() { c.batches.Flush() }

// Wait is how long a gang waits for the rest from its first member on.
func (c *Gangs[M]) Wait() time.Duration { return c.wait }

// Join adds m, a member of the gang key of size members, under sub-key sub.
// The gang flushes once size members arrived, or when the wait ends.
func (c *Gangs[M]) Join(key string, size int, sub string, m M) {
	c.batches.Join(key, func(g *Gang[M], fresh bool, _ time.Duration) (bool, time.Duration) {
		if fresh {
			*g = Gang[M]{Size: size, Members: map[string][]M{}}
		}
		if _, ok := g.Members[sub]; !ok {
			g.Order = append(g.Order, sub)
		}
		g.Members[sub] = append(g.Members[sub], m)
		g.Arrived++
		// The batch waits for the rest from its first member on.
		if fresh {
			return g.Arrived >= g.Size, c.wait
		}
		return g.Arrived >= g.Size, -1
	})
}
