// Package evictioncost decides what evicting a running GPU pod costs: the
// work it loses and what re-running that work costs. One rule, used by the
// controller (break-even protection, core's disruption-cost ranking) and by
// the simulator's eviction model, so both price an eviction the same way.
//
// A pod is either
//   - batch (a training or batch job): evicted, it loses the work done since
//     its last checkpoint, and its replacement re-runs it;
//   - service (an inference replica): evicted, its replacement needs a
//     restart (reloading model weights) before it serves again; its work
//     ends when it would have ended anyway.
//
// The class comes from the pod's annotation karpenter-gpu.io/workload-class,
// else from its controller's kind: Job, JobSet and bare pods are batch;
// ReplicaSet (Deployment), StatefulSet (also LeaderWorkerSet's pods) are
// service. Pure: no API calls.
package evictioncost

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Class is a workload's eviction class.
type Class string

const (
	Batch   Class = "batch"
	Service Class = "service"
)

const (
	// AnnotationWorkloadClass overrides the class ("batch" or "service").
	AnnotationWorkloadClass = "karpenter-gpu.io/workload-class"
	// AnnotationCheckpointInterval is how often a batch pod checkpoints (a
	// duration, or "never": it restarts from zero).
	AnnotationCheckpointInterval = "karpenter-gpu.io/checkpoint-interval"
	// AnnotationRestartTime is how long a service replica needs to serve
	// again after a restart (a duration).
	AnnotationRestartTime = "karpenter-gpu.io/restart-time"
	// AnnotationEvictionCost overrides the estimate: US dollars.
	AnnotationEvictionCost = "karpenter-gpu.io/eviction-cost"
)

// Defaults of the model; the simulator's --checkpoint-interval and
// --service-restart flags and the controller's options start from them.
const (
	DefaultCheckpointInterval = time.Hour
	DefaultRestartTime        = 5 * time.Minute
)

// Never is the checkpoint interval of work that restarts from zero.
const Never time.Duration = -1

// ParseClass validates a class name.
func ParseClass(s string) (Class, error) {
	switch Class(s) {
	case Batch, Service:
		return Class(s), nil
	}
	return "", fmt.Errorf("unknown workload class %q (want %s or %s)", s, Batch, Service)
}

// ParseCheckpointInterval reads a checkpoint interval: a positive duration
// or "never".
func ParseCheckpointInterval(s string) (time.Duration, error) {
	if strings.EqualFold(strings.TrimSpace(s), "never") {
		return Never, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("checkpoint interval %q: want a duration (e.g. 1h) or never", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("checkpoint interval %q: must be positive (or never)", s)
	}
	return d, nil
}

// ClassOfOwner maps a pod's controller kind to its class: ReplicaSet,
// StatefulSet, Deployment and LeaderWorkerSet serve; everything else (Job,
// JobSet, bare pods, unknown operators) is batch work, the more protective
// assumption.
func ClassOfOwner(kind string) Class {
	switch kind {
	case "ReplicaSet", "Deployment", "StatefulSet", "LeaderWorkerSet", "ReplicationController":
		return Service
	}
	return Batch
}

// Model holds the defaults used where a pod says nothing.
type Model struct {
	CheckpointInterval time.Duration // Never or > 0; 0 means DefaultCheckpointInterval
	RestartTime        time.Duration // 0 means DefaultRestartTime
	// Repeat weighs evicting a workload again soon after one of its pods
	// was displaced (a policy knob of the controller's estimate: the
	// simulator's eviction model charges the work really lost and ignores
	// it).
	Repeat Repeat
}

// Repeat multiplies the eviction-cost estimate of a GPU pod whose workload
// (its controller: a Job, a ReplicaSet, ...) had a pod displaced by a
// voluntary disruption less than Window ago, so one workload is not moved
// again and again while the fleet reshapes around it. A bare pod is its own
// workload. Off when Window is 0 or Multiplier is at most 1.
type Repeat struct {
	Window     time.Duration
	Multiplier float64
}

// Validate refuses a negative window or a multiplier that is negative or
// not a number.
func (r Repeat) Validate() error {
	if r.Window < 0 {
		return fmt.Errorf("repeat-eviction window %s: must not be negative (0 turns the rule off)", r.Window)
	}
	if r.Multiplier < 0 || math.IsNaN(r.Multiplier) || math.IsInf(r.Multiplier, 0) {
		return fmt.Errorf("repeat-eviction multiplier %v: want a finite number, at least 1 to weigh anything", r.Multiplier)
	}
	return nil
}

// On reports whether the rule weighs anything.
func (r Repeat) On() bool { return r.Window > 0 && r.Multiplier > 1 }

// Workload is the identity Repeat remembers a pod's workload by: its
// controller's UID, or the pod's own UID when it has none (a bare pod's
// replacement, if any, is a new workload).
func Workload(pod *corev1.Pod) string {
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		return string(ref.UID)
	}
	return string(pod.UID)
}

// Profile is how one pod loses work.
type Profile struct {
	Class              Class
	CheckpointInterval time.Duration // batch: Never or > 0
	RestartTime        time.Duration // service
	// FixedUSD, when set, overrides the estimate (the eviction-cost
	// annotation).
	FixedUSD *float64
}

// ProfileOf reads a pod's profile: annotations first, then its controller
// kind, then the model's defaults. An annotation it cannot read is an error
// (the caller falls back to the defaults and reports it).
func (m Model) ProfileOf(pod *corev1.Pod) (Profile, error) {
	p := Profile{Class: Batch, CheckpointInterval: m.checkpoint(), RestartTime: m.restart()}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		p.Class = ClassOfOwner(ref.Kind)
	}
	a := pod.Annotations
	if v, ok := a[AnnotationWorkloadClass]; ok {
		c, err := ParseClass(v)
		if err != nil {
			return p, fmt.Errorf("pod %s/%s annotation %s: %w", pod.Namespace, pod.Name, AnnotationWorkloadClass, err)
		}
		p.Class = c
	}
	if v, ok := a[AnnotationCheckpointInterval]; ok {
		d, err := ParseCheckpointInterval(v)
		if err != nil {
			return p, fmt.Errorf("pod %s/%s annotation %s: %w", pod.Namespace, pod.Name, AnnotationCheckpointInterval, err)
		}
		p.CheckpointInterval = d
	}
	if v, ok := a[AnnotationRestartTime]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return p, fmt.Errorf("pod %s/%s annotation %s: %q is not a non-negative duration", pod.Namespace, pod.Name, AnnotationRestartTime, v)
		}
		p.RestartTime = d
	}
	if v, ok := a[AnnotationEvictionCost]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f != f {
			return p, fmt.Errorf("pod %s/%s annotation %s: %q is not a non-negative number of dollars", pod.Namespace, pod.Name, AnnotationEvictionCost, v)
		}
		p.FixedUSD = &f
	}
	return p, nil
}

func (m Model) checkpoint() time.Duration {
	if m.CheckpointInterval == 0 {
		return DefaultCheckpointInterval
	}
	return m.CheckpointInterval
}

func (m Model) restart() time.Duration {
	if m.RestartTime == 0 {
		return DefaultRestartTime
	}
	return m.RestartTime
}

// LostWork is the work an eviction loses after the pod ran for ran (since
// it last started running): for a batch pod, the time since its last
// checkpoint (all of it when it never checkpoints); for a service replica,
// its restart time, but never more than it has left to serve (remaining,
// negative when unknown).
func (p Profile) LostWork(ran, remaining time.Duration) time.Duration {
	if ran < 0 {
		ran = 0
	}
	switch p.Class {
	case Service:
		if remaining >= 0 && remaining < p.RestartTime {
			return remaining
		}
		return p.RestartTime
	default:
		if p.CheckpointInterval == Never || p.CheckpointInterval <= 0 {
			return ran
		}
		return ran % p.CheckpointInterval
	}
}

// USD is what an eviction after ran costs: the lost work × the pod's GPUs ×
// the hourly price of one GPU where it runs (or the annotation's fixed
// figure).
func (p Profile) USD(ran time.Duration, gpus int64, usdPerGPUHour float64) float64 {
	if p.FixedUSD != nil {
		return *p.FixedUSD
	}
	return p.LostWork(ran, -1).Hours() * float64(gpus) * usdPerGPUHour
}
