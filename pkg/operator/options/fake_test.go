package options

import (
	"strings"
	"testing"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider/gather"
)

// --fake-gang-wait: the AWS backend's default gang wait, 0 to turn gang
// launches off, and a clear error for a negative wait.
func TestFakeGangWaitFlag(t *testing.T) {
	o, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if o.FakeGangWait != gather.DefaultGangWait {
		t.Errorf("default %s, want the AWS backend's %s", o.FakeGangWait, gather.DefaultGangWait)
	}
	for arg, want := range map[string]time.Duration{"--fake-gang-wait=0": 0, "--fake-gang-wait=3s": 3 * time.Second} {
		o, err := parse(arg)
		if err != nil || o.FakeGangWait != want {
			t.Errorf("%s: %s, %v; want %s", arg, o.FakeGangWait, err, want)
		}
	}
	if _, err := parse("--fake-gang-wait=-1s"); err == nil || !strings.Contains(err.Error(), "--fake-gang-wait") {
		t.Errorf("--fake-gang-wait=-1s: err = %v, want an error naming the flag", err)
	}
}
