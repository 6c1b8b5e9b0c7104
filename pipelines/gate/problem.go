// Package gate decides whether a release is healthy. It watches the
// release's Deployments, ReplicaSets and Pods through informers and passes
// when every workload's new generation is fully available; it fails fast on
// pod states that cannot heal; then it asks each API's readiness endpoint.
//
// Detection and description are separate, as in Skaffold: Classify only
// names what is wrong with a pod (a Class and the facts), Describe turns a
// problem into advice for a person. Every wait has a deadline and every
// retry a budget.
package gate

import (
	"fmt"
	"strings"
)

// Class names a kind of problem.
type Class string

// The problem classes. Fatal ones fail a gate as soon as they are seen;
// NotReady only explains a gate that ran out of time.
const (
	// ImagePull: ErrImagePull, ImagePullBackOff, InvalidImageName,
	// ErrImageNeverPull. Fatal.
	ImagePull Class = "ImagePull"
	// CrashLoop: a container in CrashLoopBackOff. Fatal.
	CrashLoop Class = "CrashLoop"
	// ContainerConfig: CreateContainerConfigError, CreateContainerError,
	// RunContainerError (usually a missing Secret or ConfigMap key). Fatal.
	ContainerConfig Class = "ContainerConfig"
	// ExitError: a container (or init container) terminated with a non-zero
	// exit code. Fatal.
	ExitError Class = "ExitError"
	// Unschedulable: the scheduler found no node for the pod. Fatal once it
	// lasts longer than the grace period.
	Unschedulable Class = "Unschedulable"
	// ProgressDeadline: the Deployment controller gave up
	// (ProgressDeadlineExceeded). Fatal.
	ProgressDeadline Class = "ProgressDeadline"
	// ControllerNotActing: the Deployment or StatefulSet controller left a
	// new generation unobserved for longer than the controller grace; no pod
	// will change until kube-controller-manager runs (and holds its leader
	// lease). Fatal.
	ControllerNotActing Class = "ControllerNotActing"
	// NotReady: the pod runs but is not Ready when the deadline passes.
	NotReady Class = "NotReady"
	// RolloutTimeout: the workload did not become available in time, with no
	// pod-level problem to blame.
	RolloutTimeout Class = "RolloutTimeout"
	// ReadinessEndpoint: the service's HTTP readiness endpoint did not answer
	// 2xx within its budget.
	ReadinessEndpoint Class = "ReadinessEndpoint"
	// MetricBreach: the analysis window saw the new revision's 5xx ratio or
	// p95 latency above its threshold (pipelines/metricgate).
	MetricBreach Class = "MetricBreach"
	// NoMetricData: the new revision served fewer requests in the analysis
	// window than the environment's minRequests: nothing proves it works.
	NoMetricData Class = "NoMetricData"
	// MetricError: Prometheus could not be asked within the error budget.
	MetricError Class = "MetricError"
)

// Fatal reports whether the class fails a gate as soon as it is seen (for
// Unschedulable: as soon as its grace period is over).
func (c Class) Fatal() bool {
	switch c {
	case ImagePull, CrashLoop, ContainerConfig, ExitError, Unschedulable, ProgressDeadline, ControllerNotActing:
		return true
	}
	return false
}

// Problem is one thing wrong with a workload, with the facts a person needs:
// which pod and container, the reason Kubernetes gives, its message and the
// pod's recent events.
type Problem struct {
	Class   Class  `json:"class"`
	Service string `json:"service"`
	// Workload is Kind/Name of the workload the rollout gate found the
	// problem in ("StatefulSet/monitoring-prometheus"); empty for the
	// readiness gate, which asks a Service.
	Workload  string   `json:"workload,omitempty"`
	Pod       string   `json:"pod,omitempty"`
	Container string   `json:"container,omitempty"`
	Reason    string   `json:"reason"`
	Message   string   `json:"message,omitempty"`
	ExitCode  int32    `json:"exitCode,omitempty"`
	Restarts  int32    `json:"restarts,omitempty"`
	Events    []string `json:"events,omitempty"`
	// Logs are the container's last log lines (its previous instance's when
	// it restarted), so a report says why a process exited without a
	// kubectl session. Empty when the kubelet has none to give.
	Logs []string `json:"logs,omitempty"`
	// Suggestion is filled in by Describe.
	Suggestion string `json:"suggestion,omitempty"`
}

// String is a one-line summary: service, workload, pod/container, reason
// and message.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Service)
	if p.Workload != "" && p.Pod == "" {
		fmt.Fprintf(&b, " (%s)", p.Workload)
	}
	if p.Pod != "" {
		fmt.Fprintf(&b, ": pod %s", p.Pod)
		if p.Container != "" {
			fmt.Fprintf(&b, " container %s", p.Container)
		}
	}
	fmt.Fprintf(&b, ": %s", p.Reason)
	if p.Message != "" {
		fmt.Fprintf(&b, ": %s", p.Message)
	}
	return b.String()
}

// Failure is a gate that did not pass. It lists every problem found; for a
// gate that ran out of time it says so and explains what was still missing.
type Failure struct {
	Gate     string    // "rollout" or "readiness"
	TimedOut bool      // the deadline passed
	Problems []Problem // at least one
}

func (f *Failure) Error() string {
	parts := make([]string, len(f.Problems))
	for i, p := range f.Problems {
		parts[i] = p.String()
	}
	what := "failed"
	if f.TimedOut {
		what = "timed out"
	}
	return fmt.Sprintf("%s gate %s: %s", f.Gate, what, strings.Join(parts, "; "))
}
