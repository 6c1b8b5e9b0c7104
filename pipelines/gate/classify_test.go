package gate_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
)

func pod(init []corev1.ContainerStatus, containers []corev1.ContainerStatus, conds ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "auth-server-abc"},
		Status:     corev1.PodStatus{InitContainerStatuses: init, ContainerStatuses: containers, Conditions: conds},
	}
}

func waiting(name, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

func TestClassify(t *testing.T) {
	crash := waiting("app", "CrashLoopBackOff", "")
	crash.RestartCount = 4
	crash.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []gate.Problem
	}{
		{name: "healthy", pod: pod(nil, []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}})},
		{name: "still creating is not a problem", pod: pod(nil, []corev1.ContainerStatus{waiting("app", "ContainerCreating", "")})},
		{name: "image pull back-off", pod: pod(nil, []corev1.ContainerStatus{waiting("app", "ImagePullBackOff", "Back-off pulling image r/x@sha256:1")}),
			want: []gate.Problem{{Class: gate.ImagePull, Service: "auth-server", Pod: "auth-server-abc", Container: "app", Reason: "ImagePullBackOff", Message: "Back-off pulling image r/x@sha256:1"}}},
		{name: "err image pull", pod: pod(nil, []corev1.ContainerStatus{waiting("app", "ErrImagePull", "manifest unknown")}),
			want: []gate.Problem{{Class: gate.ImagePull, Service: "auth-server", Pod: "auth-server-abc", Container: "app", Reason: "ErrImagePull", Message: "manifest unknown"}}},
		{name: "crash loop keeps the exit code", pod: pod(nil, []corev1.ContainerStatus{crash}),
			want: []gate.Problem{{Class: gate.CrashLoop, Service: "auth-server", Pod: "auth-server-abc", Container: "app", Reason: "CrashLoopBackOff", Message: "exit code 1", ExitCode: 1, Restarts: 4}}},
		{name: "missing secret", pod: pod(nil, []corev1.ContainerStatus{waiting("app", "CreateContainerConfigError", `secret "auth-server-secrets" not found`)}),
			want: []gate.Problem{{Class: gate.ContainerConfig, Service: "auth-server", Pod: "auth-server-abc", Container: "app", Reason: "CreateContainerConfigError", Message: `secret "auth-server-secrets" not found`}}},
		{name: "init container exit error", pod: pod([]corev1.ContainerStatus{{Name: "wait-for-database", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "mysql unreachable"}}}}, nil),
			want: []gate.Problem{{Class: gate.ExitError, Service: "auth-server", Pod: "auth-server-abc", Container: "wait-for-database", Reason: "Error", Message: "exit code 2: mysql unreachable", ExitCode: 2}}},
		{name: "completed init container is fine", pod: pod([]corev1.ContainerStatus{{Name: "wait-for-database", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}, nil)},
		{name: "unschedulable", pod: pod(nil, nil, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}),
			want: []gate.Problem{{Class: gate.Unschedulable, Service: "auth-server", Pod: "auth-server-abc", Reason: "Unschedulable", Message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, gate.Classify("auth-server", tt.pod))
		})
	}
}

func TestFatalClasses(t *testing.T) {
	for c, fatal := range map[gate.Class]bool{
		gate.ImagePull: true, gate.CrashLoop: true, gate.ContainerConfig: true, gate.ExitError: true,
		gate.Unschedulable: true, gate.ProgressDeadline: true,
		gate.NotReady: false, gate.RolloutTimeout: false, gate.ReadinessEndpoint: false,
	} {
		require.Equal(t, fatal, c.Fatal(), c)
	}
}

func TestDescribeSuggestsTheNextCommand(t *testing.T) {
	tests := []struct {
		p    gate.Problem
		want string
	}{
		{gate.Problem{Class: gate.CrashLoop, Service: "auth-server", Pod: "p", Container: "c"}, "kubectl -n krgeobuk logs p -c c --previous"},
		{gate.Problem{Class: gate.ContainerConfig, Service: "auth-server", Pod: "p"}, "auth-server-secrets"},
		{gate.Problem{Class: gate.Unschedulable, Service: "auth-server", Pod: "p"}, "nodeSelector"},
		{gate.Problem{Class: gate.ImagePull, Service: "auth-server", Pod: "p"}, "imagePullSecrets"},
		{gate.Problem{Class: gate.ExitError, Service: "auth-server", Pod: "p", Container: "c", ExitCode: 3}, "exited with code 3"},
		{gate.Problem{Class: gate.ReadinessEndpoint, Service: "auth-server"}, "MySQL or Redis"},
		{gate.Problem{Class: gate.ReadinessEndpoint, Service: "grafana", Workload: "Deployment/monitoring-grafana"},
			"kubectl -n krgeobuk logs deployment/monitoring-grafana"},
		{gate.Problem{Class: gate.RolloutTimeout, Service: "prometheus", Workload: "StatefulSet/monitoring-prometheus"},
			"kubectl -n krgeobuk rollout status statefulset/monitoring-prometheus"},
		{gate.Problem{Class: gate.RolloutTimeout, Service: "auth-server"}, "rollout status deployment/auth-server"},
	}
	for _, tt := range tests {
		t.Run(string(tt.p.Class)+"/"+tt.p.Service, func(t *testing.T) {
			require.Contains(t, gate.Describe("krgeobuk", tt.p).Suggestion, tt.want)
		})
	}
}
