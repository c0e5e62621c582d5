package fakeaws

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventBridge events as the interruption queue's rules deliver them (the
// message body is the event, unwrapped), for SendMessage. Their shapes
// follow the EC2 and AWS Health event references: EC2 events carry the
// instance in detail.instance-id and its ARN in resources, Health events in
// detail.affectedEntities[].entityValue and resources.

const eventAccount = "123456789012"

func eventJSON(detailType, source, region string, at time.Time, resources []string, detail map[string]any) string {
	b, err := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("ev-%d", at.UnixNano()), "detail-type": detailType, "source": source,
		"account": eventAccount, "time": at.UTC().Format(time.RFC3339), "region": region, "resources": resources, "detail": detail,
	})
	if err != nil {
		panic(err) // maps of strings: cannot fail
	}
	return string(b)
}

func instanceARN(region, id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, eventAccount, id)
}

// SpotInterruptionEvent is an "EC2 Spot Instance Interruption Warning".
func SpotInterruptionEvent(region, instanceID string, at time.Time) string {
	return eventJSON("EC2 Spot Instance Interruption Warning", "aws.ec2", region, at, []string{instanceARN(region, instanceID)},
		map[string]any{"instance-id": instanceID, "instance-action": "terminate"})
}

// CapacityReservationInterruptionEvent is an "EC2 Capacity Reservation
// Instance Interruption Warning" (an interruptible reservation reclaimed).
func CapacityReservationInterruptionEvent(region, instanceID string, at time.Time) string {
	return eventJSON("EC2 Capacity Reservation Instance Interruption Warning", "aws.ec2", region, at, []string{instanceARN(region, instanceID)},
		map[string]any{"instance-id": instanceID, "instance-action": "terminate"})
}

// RebalanceRecommendationEvent is an "EC2 Instance Rebalance Recommendation".
func RebalanceRecommendationEvent(region, instanceID string, at time.Time) string {
	return eventJSON("EC2 Instance Rebalance Recommendation", "aws.ec2", region, at, []string{instanceARN(region, instanceID)},
		map[string]any{"instance-id": instanceID})
}

// StateChangeEvent is an "EC2 Instance State-change Notification" to state.
func StateChangeEvent(region, instanceID, state string, at time.Time) string {
	return eventJSON("EC2 Instance State-change Notification", "aws.ec2", region, at, []string{instanceARN(region, instanceID)},
		map[string]any{"instance-id": instanceID, "state": state})
}

// ScheduledChangeEvent is an "AWS Health Event" of service EC2, category
// scheduledChange (an instance retirement).
func ScheduledChangeEvent(region string, at time.Time, instanceIDs ...string) string {
	entities := make([]map[string]string, 0, len(instanceIDs))
	for _, id := range instanceIDs {
		entities = append(entities, map[string]string{"entityValue": id})
	}
	return eventJSON("AWS Health Event", "aws.health", region, at, instanceIDs, map[string]any{
		"eventArn":          fmt.Sprintf("arn:aws:health:%s::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/%d", region, at.UnixNano()),
		"service":           "EC2",
		"eventTypeCode":     "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
		"eventTypeCategory": "scheduledChange",
		"startTime":         at.UTC().Format(time.RFC1123),
		"eventDescription":  []map[string]string{{"language": "en_US", "latestDescription": "EC2 has detected degradation of the underlying hardware hosting your instance."}},
		"affectedEntities":  entities,
	})
}
