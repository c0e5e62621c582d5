package operator_test

import (
	"context"
	"testing"
	"time"

	"github.com/awslabs/operatorpkg/controller"
	"github.com/samber/lo"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/karpenter/pkg/events"
	"sigs.k8s.io/karpenter/pkg/operator/options"

	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/operator"
	fakecloud "github.com/karpenter-gpu/karpenter-gpu/providers/fake"
)

type noQueue struct{}

func (noQueue) Name() string                                            { return "q" }
func (noQueue) Receive(context.Context) ([]interruption.Message, error) { return nil, nil }
func (noQueue) Delete(context.Context, interruption.Message) error      { return nil }

// The interruption controller is in the controller set exactly when a
// queue is given (the controller binary passes one with
// --interruption-queue), under either policy.
func TestNewControllersInterruption(t *testing.T) {
	for _, tc := range []struct {
		policy operator.Policy
		queue  interruption.Queue
		want   int
	}{
		{operator.PolicyKarpenterGPU, nil, 0},
		{operator.PolicyKarpenterGPU, noQueue{}, 1},
		{operator.PolicyStock, noQueue{}, 1},
	} {
		// No manager: core leaves its status controllers out.
		ctx := options.ToContext(context.Background(), &options.Options{DisableClusterStateObservability: true, CPURequests: 1000, MemoryLimit: -1})
		clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
		backend := fakecloud.NewFleet(fakecloud.Options{Clock: clk})
		cp, err := operator.NewCloudProvider(ctx, operator.CloudProviderOptions{Provider: gpucp.Options{KubeClient: kube, Backend: backend, Clock: clk, ClusterName: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		set, err := operator.NewControllers(ctx, operator.Options{
			Clock: clk, KubeClient: kube, Recorder: events.NewRecorder(&record.FakeRecorder{}), CloudProvider: cp.Decorated, Undecorated: cp.Undecorated,
			Backend: backend, Cluster: cp.NewCluster(clk, kube), InstanceTypeStore: cp.InstanceTypeStore, Policy: tc.policy,
			InterruptionQueue: tc.queue, InterruptionUnavailable: cp.Provider.Unavailable(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := lo.CountBy(set.All, func(c controller.Controller) bool { _, ok := c.(*interruption.Controller); return ok }); got != tc.want {
			t.Errorf("policy %s, queue %v: %d interruption controllers, want %d", tc.policy, tc.queue, got, tc.want)
		}
	}
}
