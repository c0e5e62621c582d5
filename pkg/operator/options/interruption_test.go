package options

import (
	"strings"
	"testing"
)

// The interruption queue: off by default, a name with the AWS backend, a
// clear error with a backend that has no SQS.
func TestInterruptionQueueFlag(t *testing.T) {
	o, err := parse()
	if err != nil || o.InterruptionQueue != "" {
		t.Fatalf("default %q, %v; want off", o.InterruptionQueue, err)
	}
	o, err = parse("--backend=aws", "--cluster-name=c", "--interruption-queue=karpenter-gpu-c")
	if err != nil || o.InterruptionQueue != "karpenter-gpu-c" {
		t.Errorf("parsed %q, %v; want karpenter-gpu-c", o.InterruptionQueue, err)
	}
	t.Setenv("INTERRUPTION_QUEUE", "from-env")
	if o, err = parse("--backend=aws", "--cluster-name=c"); err != nil || o.InterruptionQueue != "from-env" {
		t.Errorf("from INTERRUPTION_QUEUE: %q, %v", o.InterruptionQueue, err)
	}
	if _, err := parse("--backend=fake", "--interruption-queue=q"); err == nil || !strings.Contains(err.Error(), "--interruption-queue needs --backend=aws") {
		t.Errorf("with the fake backend: %v, want an error naming the flag", err)
	}
}
