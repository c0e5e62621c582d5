package simulation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/report"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/workload"
)

// A cluster's existing nodes as the starting fleet: an initial node is
// launched at t=0 as its pinned type, zone and capacity type, and the
// policies' disruption may consolidate it (a g4dn.12xlarge running one
// 1-GPU pod becomes a g4dn.xlarge; karpenter-gpu releases it at the batch
// pod's first checkpoint, an hour in, when its eviction cost is the default
// $0.3 per pod alone); one the NodePool cannot launch is an InitialNodeError
// naming the node.
func TestInitialNodes(t *testing.T) {
	w, err := workload.FromKube([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: train, namespace: ml}\nspec:\n  nodeSelector: {karpenter-gpu.io/instance-family: g4dn}\n  containers: [{name: c, image: i, resources: {requests: {cpu: '1', memory: 4Gi}, limits: {nvidia.com/gpu: 1}}}]\n"), "pod.yaml", workload.TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		node    InitialNode
		wantErr string
	}{
		{name: "consolidated", node: InitialNode{Name: "big", InstanceType: "g4dn.12xlarge", Zone: "us-east-1b"}},
		{name: "not in the catalog", node: InitialNode{Name: "cpu-1", InstanceType: "m5.large"}, wantErr: "existing node cpu-1: m5.large is not among the instance types"},
		{name: "capacity type the NodePool excludes", node: InitialNode{Name: "spot-1", InstanceType: "g4dn.xlarge", CapacityType: "spot"},
			wantErr: `existing node spot-1: NodePool gpu does not allow g4dn.xlarge spot`},
		{name: "zone the fleet lacks", node: InitialNode{Name: "far", InstanceType: "g4dn.xlarge", Zone: "us-east-1f"},
			wantErr: "existing node far: NodePool gpu cannot launch g4dn.xlarge on-demand in us-east-1f: key topology.kubernetes.io/zone"},
	} {
		for _, policy := range []Policy{PolicyKarpenterGPU, PolicyStock} {
			t.Run(tc.name+"/"+string(policy), func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Policy, cfg.Horizon, cfg.InitialNodes = policy, 90*time.Minute, []InitialNode{tc.node}
				r, err := Run(context.Background(), w, cfg)
				if tc.wantErr != "" {
					var ine *InitialNodeError
					if !errors.As(err, &ine) || ine.Node != tc.node.Name || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error %v, want an InitialNodeError containing %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var initial, running []report.InstanceRun
				for _, in := range r.Instances {
					if in.StartHours == 0 {
						initial = append(initial, in)
					}
					if in.Running {
						running = append(running, in)
					}
				}
				if len(initial) != 1 || initial[0].Type != "g4dn.12xlarge" || initial[0].Zone != "us-east-1b" || initial[0].CapacityType != "on-demand" || initial[0].Running {
					t.Errorf("instances from t=0 %+v, want the g4dn.12xlarge in us-east-1b, on-demand, consolidated away", initial)
				}
				if len(running) != 1 || running[0].Type != "g4dn.xlarge" || r.PodsNeverStarted != 0 {
					t.Errorf("running at the end %+v (%d pods never started), want one g4dn.xlarge", running, r.PodsNeverStarted)
				}
			})
		}
	}
}

// Only the labels a NodePool's template gave a node go on its NodeClaim:
// not those Kubernetes, Karpenter, EKS or the providers derive.
func TestCustomLabels(t *testing.T) {
	got := customLabels(map[string]string{
		"team": "research", "example.com/tier": "gold",
		"kubernetes.io/hostname": "n", "node.kubernetes.io/instance-type": "g4dn.xlarge", "topology.kubernetes.io/zone": "us-east-1a",
		"beta.kubernetes.io/arch": "amd64", "failure-domain.beta.kubernetes.io/zone": "us-east-1a", "node-role.kubernetes.io/gpu": "",
		"karpenter.sh/nodepool": "gpu", "karpenter.sh/capacity-type": "on-demand", "karpenter.sh/initialized": "true",
		"karpenter-gpu.io/instance-family": "g4dn", "karpenter.k8s.aws/instance-family": "g4dn", "eks.amazonaws.com/nodegroup": "ng",
	})
	if fmt.Sprint(got) != fmt.Sprint(map[string]string{"example.com/tier": "gold", "team": "research"}) {
		t.Errorf("custom labels %v, want example.com/tier and team", got)
	}
}
