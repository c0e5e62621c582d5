package awsutil

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Refreshed holds a value fetched from EC2 that is refreshed lazily: the
// first caller after it falls due fetches it while concurrent callers wait,
// and a failed fetch keeps the last known good value and is retried after
// the retry interval, so an API outage degrades to stale data, never to none.
type Refreshed[T any] struct {
	clock    clock.Clock
	interval time.Duration
	retry    time.Duration

	mu      sync.Mutex
	value   T
	ok      bool // value was fetched at least once
	due     time.Time
	lastErr error
}

// NewRefreshed returns a value fetched at most every interval, and retried
// after retry when a fetch fails.
func NewRefreshed[T any](clk clock.Clock, interval, retry time.Duration) *Refreshed[T] {
	return &Refreshed[T]{clock: clk, interval: interval, retry: retry}
}

// Get returns the value, fetching it when due. fetch receives the current
// value (to merge into) and whether there is one. err is the error of this
// call's fetch, if any; ok reports whether value was ever fetched.
func (r *Refreshed[T]) Get(ctx context.Context, fetch func(ctx context.Context, old T, ok bool) (T, error)) (value T, ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	if r.ok && now.Before(r.due) {
		return r.value, true, nil
	}
	if !r.ok && r.lastErr != nil && now.Before(r.due) {
		return r.value, false, r.lastErr
	}
	v, err := fetch(ctx, r.value, r.ok)
	if err != nil {
		r.lastErr = err
		r.due = now.Add(r.retry)
		return r.value, r.ok, err
	}
	r.value, r.ok, r.lastErr, r.due = v, true, nil, now.Add(r.interval)
	return r.value, true, nil
}

// Invalidate makes the next get fetch again.
func (r *Refreshed[T]) Invalidate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.due = time.Time{}
	r.lastErr = nil
}

// Peek returns the last fetched value without fetching; ok is false when
// none was fetched yet.
func (r *Refreshed[T]) Peek() (value T, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.value, r.ok
}
