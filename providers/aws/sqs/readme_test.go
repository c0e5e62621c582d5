package sqs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/sqs"
)

// The chart README's "Interruption handling" commands, as a platform
// engineer copies them: the EventBridge rules send every event kind the
// parser acts on (and nothing it would call unknown), and the queue policy
// of the heredoc is valid JSON letting EventBridge send to the queue.
func TestReadmeRulesAndQueuePolicy(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "karpenter-gpu", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "\n## Interruption handling\n")
	if start < 0 {
		t.Fatal(`charts/karpenter-gpu/README.md has no "## Interruption handling" section`)
	}
	section := readme[start+1:]
	section = section[:strings.Index(section, "\n## ")]

	// Each rule's pattern: one source and one detail-type.
	type rule struct{ source, detailType string }
	var rules []rule
	for _, m := range regexp.MustCompile(`'([A-Za-z]+)\|(\{.*?\})'`).FindAllStringSubmatch(section, -1) {
		var p struct {
			Source     []string `json:"source"`
			DetailType []string `json:"detail-type"`
		}
		if err := json.Unmarshal([]byte(m[2]), &p); err != nil || len(p.Source) != 1 || len(p.DetailType) != 1 {
			t.Fatalf("rule %s: pattern %s is not {source: [one], detail-type: [one]}: %v", m[1], m[2], err)
		}
		rules = append(rules, rule{p.Source[0], p.DetailType[0]})
	}
	const id = "i-0123456789abcdef0"
	for _, tc := range []struct {
		body string
		kind interruption.Kind
	}{
		{fakeaws.SpotInterruptionEvent("us-west-2", id, at), interruption.KindSpotInterruption},
		{fakeaws.CapacityReservationInterruptionEvent("us-west-2", id, at), interruption.KindCapacityReservationInterruption},
		{fakeaws.RebalanceRecommendationEvent("us-west-2", id, at), interruption.KindRebalanceRecommendation},
		{fakeaws.StateChangeEvent("us-west-2", id, "stopping", at), interruption.KindStateChange},
		{fakeaws.ScheduledChangeEvent("us-west-2", at, id), interruption.KindScheduledChange},
	} {
		var ev struct {
			Source     string `json:"source"`
			DetailType string `json:"detail-type"`
		}
		_ = json.Unmarshal([]byte(tc.body), &ev)
		if !slices.Contains(rules, rule{ev.Source, ev.DetailType}) {
			t.Errorf("no README rule sends %s events (source %s, detail-type %q) to the queue", tc.kind, ev.Source, ev.DetailType)
		}
	}
	for _, r := range rules {
		body := `{"version":"0","id":"x","source":"` + r.source + `","detail-type":"` + r.detailType + `","detail":{"instance-id":"` + id + `","state":"running","service":"EC2","eventTypeCategory":"issue"}}`
		if m := sqs.Parse(body); m.Kind == interruption.KindUnknown {
			t.Errorf("README rule for %s %q sends events the handler does not know: %v", r.source, r.detailType, m.Err)
		}
	}

	// The heredoc, as an unquoted heredoc expands it: ${QUEUE_ARN}
	// substituted, backslashes kept before quotes.
	heredoc := regexp.MustCompile(`(?s)cat > /tmp/karpenter-gpu-queue-policy.json <<EOF\n(.*?)\nEOF\n`).FindStringSubmatch(section)
	if heredoc == nil {
		t.Fatal("no queue policy heredoc")
	}
	const arn = "arn:aws:sqs:us-west-2:123456789012:karpenter-gpu-my-cluster"
	attrs := strings.ReplaceAll(heredoc[1], "${QUEUE_ARN}", arn)
	var attributes map[string]string
	if err := json.Unmarshal([]byte(attrs), &attributes); err != nil {
		t.Fatalf("set-queue-attributes file is not JSON: %v\n%s", err, attrs)
	}
	var policy struct {
		Statement []struct {
			Effect    string
			Principal any
			Action    string
			Resource  string
		}
	}
	if err := json.Unmarshal([]byte(attributes["Policy"]), &policy); err != nil {
		t.Fatalf("queue policy is not JSON: %v\n%s", err, attributes["Policy"])
	}
	allowed := false
	for _, s := range policy.Statement {
		if s.Resource != arn {
			t.Errorf("statement on %s, want the queue %s", s.Resource, arn)
		}
		p, _ := json.Marshal(s.Principal)
		allowed = allowed || s.Effect == "Allow" && s.Action == "sqs:SendMessage" && strings.Contains(string(p), "events.amazonaws.com")
	}
	if !allowed {
		t.Error("the queue policy does not let EventBridge (events.amazonaws.com) send messages")
	}
}
