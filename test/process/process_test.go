package process_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/test/process"
)

// A started process runs until its test ends, then is stopped; its log
// lands in KeepLogDir.
func TestCmdRunsUntilTheTestEndsAndKeepsItsLog(t *testing.T) {
	keep, marker := t.TempDir(), filepath.Join(t.TempDir(), "running")
	t.Run("inner", func(t *testing.T) {
		process.Cmd{Name: "sh", Path: "/bin/sh", KeepLogDir: keep,
			Args: []string{"-c", "echo started; touch " + marker + "; sleep 60"}}.Start(t)
		process.Eventually(t, 10*time.Second, "the process to run", func() (bool, error) {
			_, err := os.Stat(marker)
			return err == nil, err
		})
	})
	// The inner test's cleanup killed the process (else it would sleep on)
	// and kept the log.
	out, err := os.ReadFile(filepath.Join(keep, "sh.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "started\n" {
		t.Errorf("kept log = %q, want %q", out, "started\n")
	}
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	process.Eventually(t, 10*time.Second, "the third call", func() (bool, error) {
		calls++
		return calls == 3, errors.New("not yet")
	})
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
}

func TestFreePortCanBeBound(t *testing.T) {
	port := process.FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d from FreePort: %v", port, err)
	}
	_ = l.Close()
}
