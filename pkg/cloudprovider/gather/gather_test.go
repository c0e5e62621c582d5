package gather_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
)

// flushes records what each flush received.
type flushes[T any] struct {
	mu  sync.Mutex
	got []T
	ch  chan struct{}
}

func newFlushes[T any]() *flushes[T] { return &flushes[T]{ch: make(chan struct{}, 100)} }

func (f *flushes[T]) add(v T) {
	f.mu.Lock()
	f.got = append(f.got, v)
	f.mu.Unlock()
	f.ch <- struct{}{}
}

// wait for n flushes within d.
func (f *flushes[T]) wait(t *testing.T, n int, d time.Duration) []T {
	t.Helper()
	deadline := time.After(d)
	for range n {
		select {
		case <-f.ch:
		case <-deadline:
			t.Fatalf("waited %s for %d flushes", d, n)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// none asserts no further flush within d.
func (f *flushes[T]) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-f.ch:
		t.Fatalf("unexpected flush")
	case <-time.After(d):
	}
}

func TestGatherer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int           // a batch is full at this many members
		wait     time.Duration // the batch's timer
		members  int
		want     [][]int // the batches flushed, by first member
		within   time.Duration
	}{
		{name: "a full batch flushes at once, before its timer", capacity: 3, wait: time.Hour, members: 3, want: [][]int{{0, 1, 2}}, within: 5 * time.Second},
		{name: "members past a full batch start a new one", capacity: 2, wait: time.Hour, members: 4, want: [][]int{{0, 1}, {2, 3}}, within: 5 * time.Second},
		{name: "a batch that never fills flushes when its timer fires", capacity: 10, wait: 50 * time.Millisecond, members: 3, want: [][]int{{0, 1, 2}}, within: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlushes[[]int]()
			g := gather.New(func(key string, v *[]int) {
				if key != "k" {
					t.Errorf("flushed key %q", key)
				}
				f.add(slices.Clone(*v))
			})
			for i := range tc.members {
				g.Join("k", func(v *[]int, fresh bool, _ time.Duration) (bool, time.Duration) {
					if fresh != (len(*v) == 0) {
						t.Errorf("member %d: fresh = %v with %d members before it", i, fresh, len(*v))
					}
					*v = append(*v, i)
					return len(*v) >= tc.capacity, tc.wait
				})
			}
			// Full batches flush concurrently: in any order.
			got := f.wait(t, len(tc.want), tc.within)
			slices.SortFunc(got, func(a, b []int) int { return a[0] - b[0] })
			if !equalBatches(got, tc.want) {
				t.Fatalf("flushed %v, want %v", got, tc.want)
			}
			f.none(t, 100*time.Millisecond)
		})
	}
}

// Every batch is flushed exactly once, with every member in exactly one
// batch, when a member fills a batch as its timer fires.
func TestGathererFlushesOnce(t *testing.T) {
	for range 50 {
		f := newFlushes[*[]int]()
		g := gather.New(func(_ string, v *[]int) { f.add(v) })
		g.Join("k", func(v *[]int, _ bool, _ time.Duration) (bool, time.Duration) {
			*v = append(*v, 1)
			return false, time.Millisecond
		})
		time.Sleep(time.Millisecond)
		g.Join("k", func(v *[]int, _ bool, _ time.Duration) (bool, time.Duration) {
			*v = append(*v, 2)
			return true, 0
		})
		// One flush of both, or (the timer fired first) one of each.
		got := f.wait(t, 1, 5*time.Second)
		for consumed := 1; consumed < len(got) || total(got) < 2; consumed++ {
			got = f.wait(t, 1, 5*time.Second)
		}
		f.none(t, 20*time.Millisecond)
		var members []int
		for i, b := range got {
			if slices.Contains(got[:i], b) {
				t.Fatalf("batch %v flushed twice", *b)
			}
			members = append(members, *b...)
		}
		slices.Sort(members)
		if !slices.Equal(members, []int{1, 2}) {
			t.Fatalf("flushed members %v, want [1 2] once each", members)
		}
	}
}

// A member arriving right after a batch filled (before its flush runs)
// is never added to it.
func TestGathererNeverOverfills(t *testing.T) {
	const capacity = 2
	var mu sync.Mutex
	var sizes []int
	var wg sync.WaitGroup
	wg.Add(200)
	g := gather.New(func(_ string, v *[]int) {
		mu.Lock()
		sizes = append(sizes, len(*v))
		mu.Unlock()
		for range *v {
			wg.Done()
		}
	})
	for i := range 200 {
		g.Join("k", func(v *[]int, _ bool, _ time.Duration) (bool, time.Duration) {
			*v = append(*v, i)
			return len(*v) >= capacity, 10 * time.Millisecond
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, n := range sizes {
		if n > capacity {
			t.Fatalf("a batch of %d members flushed, capacity %d", n, capacity)
		}
	}
}

func TestReply(t *testing.T) {
	r := gather.NewReply[string](context.Background())
	r.Send("answer")
	if got, err := r.Await(); err != nil || got != "answer" {
		t.Fatalf("Await = %q, %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r = gather.NewReply[string](ctx)
	cancel()
	if _, err := r.Await(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await after the member's context ended = %v, want context.Canceled", err)
	}
	r.Send("late") // the flush answers a member that left without blocking
}

func TestGangs(t *testing.T) {
	type flushed struct {
		key  string
		gang gather.Gang[int]
	}
	for _, tc := range []struct {
		name    string
		size    int
		subs    []string // one member per entry, its sub-key
		wait    time.Duration
		arrived int
		order   []string
	}{
		{name: "a whole gang flushes as soon as its last member arrives", size: 4, subs: []string{"a", "b", "a", "a"}, wait: time.Hour, arrived: 4, order: []string{"a", "b"}},
		{name: "part of a gang flushes when the wait ends", size: 4, subs: []string{"a", "a"}, wait: 50 * time.Millisecond, arrived: 2, order: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlushes[flushed]()
			c := gather.NewGangs(tc.wait, func(key string, g *gather.Gang[int]) { f.add(flushed{key, *g}) })
			if c.Wait() != tc.wait {
				t.Fatalf("Wait = %s, want %s", c.Wait(), tc.wait)
			}
			start := time.Now()
			for i, sub := range tc.subs {
				c.Join("gang-1", tc.size, sub, i)
			}
			got := f.wait(t, 1, 5*time.Second)[0]
			if tc.arrived < tc.size && time.Since(start) < tc.wait {
				t.Errorf("a partial gang flushed after %s, before its wait of %s", time.Since(start), tc.wait)
			}
			if got.key != "gang-1" || got.gang.Size != tc.size || got.gang.Arrived != tc.arrived || !slices.Equal(got.gang.Order, tc.order) {
				t.Fatalf("flushed %s size %d arrived %d order %v; want size %d arrived %d order %v", got.key, got.gang.Size, got.gang.Arrived, got.gang.Order, tc.size, tc.arrived, tc.order)
			}
			n := 0
			for i, sub := range tc.subs {
				if !slices.Contains(got.gang.Members[sub], i) {
					t.Errorf("member %d missing under %q: %v", i, sub, got.gang.Members)
				}
				n++
			}
			if total := len(got.gang.Members["a"]) + len(got.gang.Members["b"]); total != n {
				t.Errorf("%d members flushed, want %d", total, n)
			}
			// A member after the flush starts a new gang of its own.
			c.Join("gang-1", tc.size, "a", 99)
			f.none(t, 20*time.Millisecond)
		})
	}
	if c := gather.NewGangs(0, func(string, *gather.Gang[int]) {}); c.Wait() != gather.DefaultGangWait {
		t.Errorf("Wait with 0 = %s, want the default %s", c.Wait(), gather.DefaultGangWait)
	}
}

func total(batches []*[]int) int {
	n := 0
	for _, b := range batches {
		n += len(*b)
	}
	return n
}

func equalBatches(a, b [][]int) bool {
	return slices.EqualFunc(a, b, func(x, y []int) bool { return slices.Equal(x, y) })
}

// Flush launches what has arrived of every waiting gang at once, before
// the flush returns, without waiting out the timer; members after it start
// a new gang, and a Flush with nothing waiting flushes nothing.
func TestGangsFlush(t *testing.T) {
	var got []string
	c := gather.NewGangs(time.Hour, func(key string, g *gather.Gang[int]) {
		got = append(got, fmt.Sprintf("%s:%d/%d", key, g.Arrived, g.Size))
	})
	c.Join("gang-b", 4, "a", 1)
	c.Join("gang-a", 3, "a", 2)
	c.Join("gang-a", 3, "a", 3)
	start := time.Now()
	c.Flush()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Flush took %s", d)
	}
	if want := []string{"gang-a:2/3", "gang-b:1/4"}; !slices.Equal(got, want) {
		t.Fatalf("flushed %v, want %v (both gangs, in key order, before Flush returned)", got, want)
	}
	c.Flush()
	if len(got) != 2 {
		t.Fatalf("a Flush with nothing waiting flushed %v", got[2:])
	}
	c.Join("gang-a", 3, "a", 4)
	c.Flush()
	if want := "gang-a:1/3"; len(got) != 3 || got[2] != want {
		t.Fatalf("a member after the flush: flushed %v, want a new gang %s", got[2:], want)
	}
}

type observer struct{ events []string }

func (o *observer) Waiting() { o.events = append(o.events, "waiting") }
func (o *observer) Resumed() { o.events = append(o.events, "resumed") }

// A member awaiting its reply under a context with an observer reports
// that it waits and that it resumed; without one nothing is reported.
func TestReplyObserver(t *testing.T) {
	o := &observer{}
	r := gather.NewReply[string](gather.WithObserver(context.Background(), o))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.Await()
	}()
	r.Send("answer")
	<-done
	if want := []string{"waiting", "resumed"}; !slices.Equal(o.events, want) {
		t.Fatalf("observed %v, want %v", o.events, want)
	}
}

// Flush also waits for a gang that filled and is launching in the
// background: once it returns, every member that joined has its answer.
func TestGangsFlushWaitsForFlushesUnderWay(t *testing.T) {
	var mu sync.Mutex
	answered := 0
	c := gather.NewGangs(time.Hour, func(_ string, g *gather.Gang[int]) {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		answered += g.Arrived
		mu.Unlock()
	})
	c.Join("gang", 2, "a", 1)
	c.Join("gang", 2, "a", 2) // full: flushes in the background
	c.Flush()
	mu.Lock()
	defer mu.Unlock()
	if answered != 2 {
		t.Fatalf("Flush returned with %d of 2 members answered", answered)
	}
}
