package gate

import (
	"fmt"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Describe returns p with a Suggestion for the person reading the report:
// what the class usually means here and the command that shows more.
func Describe(namespace string, p Problem) Problem {
	logs := fmt.Sprintf("kubectl -n %s logs %s -c %s --previous", namespace, p.Pod, p.Container)
	// kubectl names a workload kind/name in lower case (statefulset/x); a
	// problem without a workload is an apps Deployment named as its service.
	workload := "deployment/" + p.Service
	if kind, name, ok := strings.Cut(p.Workload, "/"); ok {
		workload = strings.ToLower(kind) + "/" + name
	}
	svc, err := catalog.Lookup(p.Service)
	api := err == nil && svc.IsAPI()
	describe := fmt.Sprintf("kubectl -n %s describe pod %s", namespace, p.Pod)
	switch p.Class {
	case ImagePull:
		p.Suggestion = "The node cannot pull the image. Preflight found it in the registry, so check the " +
			"pull credentials (imagePullSecrets) and that nodes can reach the registry; " + describe
	case CrashLoop:
		p.Suggestion = "The container starts and exits again and again. Its last output says why (often a " +
			"missing setting or an unreachable data server): " + logs
	case ContainerConfig:
		example := ""
		if api {
			example = fmt.Sprintf(" (for example %s-secrets)", p.Service)
		}
		p.Suggestion = fmt.Sprintf("The container cannot be created from its spec, usually a Secret or ConfigMap "+
			"key it references is missing%s; %s", example, describe)
	case ExitError:
		p.Suggestion = fmt.Sprintf("The container exited with code %d. Read its output: %s", p.ExitCode, logs)
	case Unschedulable:
		p.Suggestion = "No node can take the pod. Compare its nodeSelector, tolerations and resource requests " +
			"with the nodes (kubectl get nodes --show-labels); " + describe
	case ProgressDeadline:
		p.Suggestion = fmt.Sprintf("The Deployment controller stopped waiting for progress; kubectl -n %s describe %s",
			namespace, workload)
	case ControllerNotActing:
		p.Suggestion = "Nothing in the cluster acts on the change: check that kube-controller-manager runs and holds " +
			"its leader lease (kubectl -n kube-system get lease kube-controller-manager) and read its log. " +
			"The release itself may be fine; deploy again once the controller acts."
	case NotReady:
		p.Suggestion = "The pod runs but its readiness probe does not pass. Check the service's readiness endpoint " +
			"and the data stores it needs; " + describe
	case RolloutTimeout:
		p.Suggestion = fmt.Sprintf("The new pods did not become available in time; kubectl -n %s rollout status %s",
			namespace, workload)
	case ReadinessEndpoint:
		if api {
			p.Suggestion = "The API answers but reports itself not ready: usually its MySQL or Redis on the data " +
				"server is unreachable or refusing credentials. Check the data server and the service's Secret."
		} else {
			p.Suggestion = fmt.Sprintf("Its Service does not answer 2xx on the readiness path although the rollout passed: "+
				"check that the Service selects the pods on the named port, then read the log: kubectl -n %s logs %s", namespace, workload)
		}
	case MetricBreach:
		p.Suggestion = fmt.Sprintf("The new revision answered, but worse than the environment allows; the numbers above come "+
			"from Prometheus (http_requests_total, http_request_duration_seconds). Read its log: kubectl -n %s logs %s", namespace, workload)
	case NoMetricData:
		p.Suggestion = "Too few requests reached the new revision in the analysis window to judge it: check that traffic " +
			"reaches the Service and that Prometheus scrapes the pods (its krgeobuk-apps targets), or lower analysis.minRequests."
	case MetricError:
		p.Suggestion = "Prometheus did not answer: check the monitoring stack (krgeobuk status --stack monitoring) or --prometheus-url."
	}
	return p
}
