package syncbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/test/syncbuf"
)

// Concurrent writers and readers (run with -race) lose no write: every line
// ends up whole in String.
func TestConcurrentWritesAreKept(t *testing.T) {
	var b syncbuf.Buffer
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range lines {
				if _, err := b.Write([]byte("line\n")); err != nil {
					t.Error(err)
					return
				}
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != writers*lines {
		t.Errorf("String() holds %d lines, want %d", got, writers*lines)
	}
	if err := b.Sync(); err != nil {
		t.Errorf("Sync() = %v, want nil", err)
	}
}
