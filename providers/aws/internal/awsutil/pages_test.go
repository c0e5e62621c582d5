package awsutil_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

type options struct{}

// pages serves its pages in order, failing with err at index failAt, and
// records each call's deadline.
type pages struct {
	pages     []int
	next      int
	failAt    int
	err       error
	deadlines []time.Duration
}

func (p *pages) HasMorePages() bool { return p.next < len(p.pages) }

func (p *pages) NextPage(ctx context.Context, _ ...func(*options)) (int, error) {
	d, ok := ctx.Deadline()
	if !ok {
		return 0, errors.New("no deadline")
	}
	p.deadlines = append(p.deadlines, time.Until(d))
	if p.next == p.failAt {
		return 0, p.err
	}
	p.next++
	return p.pages[p.next-1], nil
}

func TestEachPage(t *testing.T) {
	t.Run("every page, each call under the timeout", func(t *testing.T) {
		p := &pages{pages: []int{1, 2, 3}, failAt: -1}
		var got []int
		if err := awsutil.EachPage(context.Background(), time.Minute, p, func(page int) { got = append(got, page) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Errorf("pages seen = %v, want [1 2 3]", got)
		}
		for i, d := range p.deadlines {
			if d <= 0 || d > time.Minute {
				t.Errorf("call %d deadline in %s, want within the 1m timeout", i, d)
			}
		}
	})
	t.Run("stops at the first error", func(t *testing.T) {
		boom := errors.New("throttled")
		p := &pages{pages: []int{1, 2, 3}, failAt: 1, err: boom}
		var got []int
		err := awsutil.EachPage(context.Background(), time.Minute, p, func(page int) { got = append(got, page) })
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
		if len(got) != 1 || len(p.deadlines) != 2 {
			t.Errorf("pages seen %v after %d calls, want [1] after 2", got, len(p.deadlines))
		}
	})
}
