package gate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Classify names the problems of one pod of service as they stand now. It
// only detects; Describe adds advice. Unschedulable is reported whenever the
// scheduler has refused the pod; the caller decides when the grace period
// is over. A pod that is merely not Ready yet yields nothing.
func Classify(service string, pod *corev1.Pod) []Problem {
	var out []Problem
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			out = append(out, Problem{Class: Unschedulable, Service: service, Pod: pod.Name, Reason: c.Reason, Message: c.Message})
		}
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if p, ok := classifyContainer(service, pod.Name, cs); ok {
			out = append(out, p)
		}
	}
	return out
}

func classifyContainer(service, pod string, cs corev1.ContainerStatus) (Problem, bool) {
	p := Problem{Service: service, Pod: pod, Container: cs.Name, Restarts: cs.RestartCount}
	if w := cs.State.Waiting; w != nil {
		p.Reason, p.Message = w.Reason, w.Message
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
			p.Class = ImagePull
		case "CrashLoopBackOff":
			p.Class = CrashLoop
			if t := cs.LastTerminationState.Terminated; t != nil {
				p.ExitCode = t.ExitCode
				if p.Message == "" {
					p.Message = terminatedMessage(t)
				}
			}
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			p.Class = ContainerConfig
		default:
			return Problem{}, false
		}
		return p, true
	}
	if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
		p.Class = ExitError
		p.Reason = t.Reason
		if p.Reason == "" {
			p.Reason = "Error"
		}
		p.ExitCode = t.ExitCode
		p.Message = terminatedMessage(t)
		return p, true
	}
	return Problem{}, false
}

func terminatedMessage(t *corev1.ContainerStateTerminated) string {
	msg := fmt.Sprintf("exit code %d", t.ExitCode)
	if t.Signal != 0 {
		msg += fmt.Sprintf(", signal %d", t.Signal)
	}
	if t.Message != "" {
		msg += ": " + t.Message
	}
	return msg
}

// notReady explains a pod that is scheduled and has no fatal problem but is
// not Ready: the Ready condition's reason and message, or the containers
// that are not ready.
func notReady(service string, pod *corev1.Pod) (Problem, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			return Problem{}, false
		}
		p := Problem{Class: NotReady, Service: service, Pod: pod.Name, Reason: c.Reason, Message: c.Message}
		if p.Reason == "" {
			p.Reason = "NotReady"
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if !cs.Ready {
				p.Container = cs.Name
				p.Restarts = cs.RestartCount
				break
			}
		}
		return p, true
	}
	return Problem{Class: NotReady, Service: service, Pod: pod.Name, Reason: "NotReady",
		Message: fmt.Sprintf("pod phase %s, no Ready condition yet", pod.Status.Phase)}, true
}
