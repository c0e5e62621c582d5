package sqs

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
)

// EventBridge sources and detail-types of the events the interruption queue
// receives (charts/karpenter-gpu/README.md has the rules).
const (
	SourceEC2                   = "aws.ec2"
	SourceHealth                = "aws.health"
	DetailSpotInterruption      = "EC2 Spot Instance Interruption Warning"
	DetailReservationInterrupt  = "EC2 Capacity Reservation Instance Interruption Warning"
	DetailRebalance             = "EC2 Instance Rebalance Recommendation"
	DetailStateChange           = "EC2 Instance State-change Notification"
	DetailHealthEvent           = "AWS Health Event"
	healthServiceEC2            = "EC2"
	healthCategoryScheduledWork = "scheduledChange"
)

// event is the EventBridge envelope.
type event struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       string          `json:"time"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

type ec2Detail struct {
	InstanceID string `json:"instance-id"`
	State      string `json:"state"`
}

type healthDetail struct {
	Service           string `json:"service"`
	EventTypeCategory string `json:"eventTypeCategory"`
	EventTypeCode     string `json:"eventTypeCode"`
	AffectedEntities  []struct {
		EntityValue string `json:"entityValue"`
	} `json:"affectedEntities"`
}

// Parse turns an EventBridge event (an SQS message body) into the
// controller's message. It never fails: a body it cannot use is a message
// of kind KindMalformed (not an event, or an event of a known kind without
// its instance) or KindUnknown (an event of another source or
// detail-type), with Err saying why.
func Parse(body string) interruption.Message {
	malformed := func(format string, args ...any) interruption.Message {
		return interruption.Message{Kind: interruption.KindMalformed, Err: fmt.Errorf(format, args...)}
	}
	var ev event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return malformed("message body is not an EventBridge event (JSON object with detail-type, source and detail): %w; body %q", err, truncate(body))
	}
	if ev.DetailType == "" || ev.Source == "" {
		return malformed("message body is not an EventBridge event: no detail-type or source; body %q", truncate(body))
	}
	m := interruption.Message{}
	if ev.Time != "" {
		if t, err := time.Parse(time.RFC3339, ev.Time); err == nil {
			m.Time = t
		}
	}
	switch {
	case ev.Source == SourceEC2 && slices.Contains([]string{DetailSpotInterruption, DetailReservationInterrupt, DetailRebalance, DetailStateChange}, ev.DetailType):
		var d ec2Detail
		if len(ev.Detail) > 0 {
			if err := json.Unmarshal(ev.Detail, &d); err != nil {
				return malformed("%s event %s: detail is not an object with instance-id: %w", ev.DetailType, ev.ID, err)
			}
		}
		if d.InstanceID != "" {
			m.InstanceIDs = []string{d.InstanceID}
		} else {
			m.InstanceIDs = instanceIDs(ev.Resources)
		}
		if len(m.InstanceIDs) == 0 || !validInstanceIDs(m.InstanceIDs) {
			return malformed("%s event %s names no EC2 instance (detail.instance-id %q, resources %q)", ev.DetailType, ev.ID, d.InstanceID, ev.Resources)
		}
		switch ev.DetailType {
		case DetailSpotInterruption:
			m.Kind = interruption.KindSpotInterruption
		case DetailReservationInterrupt:
			m.Kind = interruption.KindCapacityReservationInterruption
		case DetailRebalance:
			m.Kind = interruption.KindRebalanceRecommendation
		default:
			if d.State == "" {
				return malformed("%s event %s has no detail.state", ev.DetailType, ev.ID)
			}
			m.State = d.State
			m.Kind = interruption.KindNoOp
			if slices.Contains([]string{interruption.StateStopping, interruption.StateStopped, interruption.StateShuttingDown, interruption.StateTerminated}, d.State) {
				m.Kind = interruption.KindStateChange
			}
		}
		return m
	case ev.Source == SourceHealth && ev.DetailType == DetailHealthEvent:
		var d healthDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return malformed("AWS Health event %s: detail is not an object: %w", ev.ID, err)
		}
		if d.Service != healthServiceEC2 || d.EventTypeCategory != healthCategoryScheduledWork {
			m.Kind = interruption.KindNoOp
			return m
		}
		var values []string
		for _, e := range d.AffectedEntities {
			values = append(values, e.EntityValue)
		}
		m.InstanceIDs = instanceIDs(values)
		if len(m.InstanceIDs) == 0 {
			m.InstanceIDs = instanceIDs(ev.Resources)
		}
		if len(m.InstanceIDs) == 0 {
			return malformed("AWS Health scheduled change %s (%s) names no EC2 instance in affectedEntities or resources", ev.ID, d.EventTypeCode)
		}
		m.Kind = interruption.KindScheduledChange
		return m
	default:
		return interruption.Message{Kind: interruption.KindUnknown, Time: m.Time,
			Err: fmt.Errorf("event %s of source %q and detail-type %q is not an interruption event; check the queue's EventBridge rules", ev.ID, ev.Source, ev.DetailType)}
	}
}

// instanceIDs returns the instance IDs among values: plain IDs (i-...) or
// instance ARNs (arn:aws:ec2:<region>:<account>:instance/i-...).
func instanceIDs(values []string) []string {
	var out []string
	for _, v := range values {
		if i := strings.LastIndex(v, ":instance/"); i >= 0 {
			v = v[i+len(":instance/"):]
		}
		if isInstanceID(v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func validInstanceIDs(ids []string) bool {
	return !slices.ContainsFunc(ids, func(id string) bool { return !isInstanceID(id) })
}

// isInstanceID: i- and 8 or 17 hexadecimal digits.
func isInstanceID(s string) bool {
	hex := strings.TrimPrefix(s, "i-")
	if hex == s || (len(hex) != 8 && len(hex) != 17) {
		return false
	}
	return !strings.ContainsFunc(hex, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') })
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
