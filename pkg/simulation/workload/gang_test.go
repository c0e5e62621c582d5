package workload

import (
	"strings"
	"testing"
)

func TestGangScenarioFields(t *testing.T) {
	pools := `nodePools:
  - metadata: {name: gpu}
    spec:
      template: {spec: {requirements: [{key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}]}}
      limits: {nvidia.com/gpu: "16"}
`
	for _, tt := range []struct {
		name, yaml, wantErr string
	}{
		{name: "gang with minMembers", yaml: pools + `podGroups:
  - {name: train, gang: true, count: 2, minMembers: 1, requests: {nvidia.com/gpu: "8"}}
`},
		{name: "minMembers above count", yaml: `podGroups:
  - {name: train, gang: true, count: 2, minMembers: 3, requests: {nvidia.com/gpu: "8"}}
`, wantErr: `s.yaml:2: field "podGroups[0].minMembers": must be from 1 to the group's count 2, got 3`},
		{name: "minMembers without gang", yaml: `podGroups:
  - {name: train, count: 2, minMembers: 2, requests: {nvidia.com/gpu: "8"}}
`, wantErr: `field "podGroups[0].minMembers": only a gang (gang: true) has minMembers`},
		{name: "gang larger than any NodePool allows", yaml: pools + `podGroups:
  - {name: train, gang: true, count: 3, requests: {nvidia.com/gpu: "8"}}
`, wantErr: `field "podGroups[0].count": the gang's 3 pods need more than any NodePool allows: NodePool "gpu" limits nvidia.com/gpu to 16`},
		{name: "a plain group may exceed the limits", yaml: pools + `podGroups:
  - {name: serve, count: 3, requests: {nvidia.com/gpu: "8"}}
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseScenario(strings.NewReader(tt.yaml), "s.yaml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Workload(TraceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range w.Pods {
				g := s.PodGroups[0]
				if g.Gang != (p.Gang != nil) {
					t.Fatalf("pod %s gang %+v, group gang %v", p.Name, p.Gang, g.Gang)
				}
				if p.Gang != nil && (p.Gang.Name != "train" || p.Gang.Size != 2 || p.Gang.MinMembers != 1) {
					t.Errorf("pod %s gang %+v, want train of 2, min 1", p.Name, p.Gang)
				}
			}
		})
	}
}
