// Package process runs what the end-to-end suites (test/e2e, test/kueue,
// test/chaos, test/schedulerdiff) run as separate processes beside an
// envtest control plane: kube-scheduler, kube-controller-manager, the
// controller binary built from this checkout, Kueue's manager; with the
// admin kubeconfig they connect with, free loopback ports, and the polling
// and timing those suites log.
package process

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TailLines is how many of its last log lines a process shows when the test
// fails.
const TailLines = 80

// Cmd is a process a test runs until it ends.
type Cmd struct {
	// Name names the process in the test's log and its log file.
	Name string
	Path string
	// Env is added to the test process's environment.
	Env  []string
	Args []string
	// KeepLogDir, when set, receives the whole log as Name.log when the
	// test ends, passed or failed.
	KeepLogDir string
}

// Start runs c until the test ends, its output in a log file whose last
// TailLines lines are logged when the test fails. It fails the test when
// the process cannot start.
func (c Cmd) Start(t testing.TB) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), c.Name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting %s (%s): %v", c.Name, c.Path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
		out, _ := os.ReadFile(logPath)
		if c.KeepLogDir != "" {
			if err := os.WriteFile(filepath.Join(c.KeepLogDir, c.Name+".log"), out, 0o644); err != nil {
				t.Errorf("keeping the log of %s: %v", c.Name, err)
			}
		}
		if t.Failed() {
			lines := strings.Split(string(out), "\n")
			t.Logf("--- last lines of %s ---\n%s", c.Name, strings.Join(lo.Subset(lines, -TailLines, TailLines), "\n"))
		}
	})
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago (another
// process may take it before the one it is meant for binds it).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// AdminKubeconfig adds user name in group system:masters to env's running
// control plane and writes its kubeconfig to a file that lasts as long as
// the test, for the processes the test runs; it returns the file's path.
func AdminKubeconfig(t testing.TB, env *envtest.Environment, name string) string {
	t.Helper()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// KubeScheduler is the kube-scheduler of assets (the control-plane
// binaries' directory) on kubeconfig: no leader election, no serving port.
func KubeScheduler(assets, kubeconfig string) Cmd {
	return Cmd{Name: "kube-scheduler", Path: filepath.Join(assets, "kube-scheduler"),
		Args: []string{"--kubeconfig=" + kubeconfig, "--leader-elect=false", "--secure-port=0"}}
}

// KubeControllerManager is the kube-controller-manager of assets on
// kubeconfig running only controllers: no leader election, no serving
// port, one identity for all controllers.
func KubeControllerManager(assets, kubeconfig string, controllers ...string) Cmd {
	return Cmd{Name: "kube-controller-manager", Path: filepath.Join(assets, "kube-controller-manager"),
		Args: []string{"--kubeconfig=" + kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--controllers=" + strings.Join(controllers, ","), "--use-service-account-credentials=false"}}
}

// BuildController builds the controller binary (./cmd/controller) of the
// module at root into a file that lasts as long as the test and returns its
// path.
func BuildController(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "controller")
	build := exec.Command("go", "build", "-o", bin, "./cmd/controller")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the controller: %v\n%s", err, out)
	}
	return bin
}

// PollInterval is how often Eventually tries its condition.
const PollInterval = 250 * time.Millisecond

// Eventually polls cond until it holds, or fails the test after timeout
// naming what it waited for and cond's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(PollInterval)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
}

// Timer logs the steps of a long test with the time since its start and
// since the step before.
type Timer struct {
	t           testing.TB
	start, last time.Time
}

// NewTimer starts a Timer now.
func NewTimer(t testing.TB) *Timer {
	now := time.Now()
	return &Timer{t: t, start: now, last: now}
}

// Mark logs that what is done.
func (tm *Timer) Mark(what string) {
	now := time.Now()
	tm.t.Logf("[%6.1fs +%5.1fs] %s", now.Sub(tm.start).Seconds(), now.Sub(tm.last).Seconds(), what)
	tm.last = now
}

// Lap starts the next step now, without logging: the next Mark's step
// time leaves out what came before.
func (tm *Timer) Lap() { tm.last = time.Now() }
