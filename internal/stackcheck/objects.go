package stackcheck

import (
	"fmt"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// exactTag is a release tag such as v3.15.1 or 12.2.0, optionally followed by
// a digest; floating tags (latest, 3, 3.15) are refused.
var exactTag = regexp.MustCompile(`^[^:@]+:v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?(@sha256:[0-9a-f]{64})?$|^[^:@]+@sha256:[0-9a-f]{64}$`)

// standardLabels must be on every object the chart renders.
var standardLabels = []string{
	"app.kubernetes.io/name",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/managed-by",
	"app.kubernetes.io/part-of",
}

// clusterScoped kinds carry no namespace.
var clusterScoped = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "Namespace": true}

// CheckObjects applies the Kubernetes rules to every rendered object: the
// project-wide rules of pipelines/policy (restricted profile, resources,
// probes, Ingress backends, DNS egress, secret literals) and the stack's own
// (standard labels, release namespace, exact image versions, Prometheus RBAC).
func CheckObjects(objs []render.Object, namespace string) Violations {
	var vs Violations
	// The monitoring stack never carries secret literals, whatever the environment.
	for _, v := range policy.Check(policy.Context{Environment: "production"}, objs) {
		vs = append(vs, Violation{Object: v.Object, Rule: v.Rule, Detail: v.Message})
	}
	for _, o := range objs {
		ref := o.Ref()
		add := func(rule, format string, args ...any) {
			vs = append(vs, Violation{Object: ref, Rule: rule, Detail: fmt.Sprintf(format, args...)})
		}
		labels := o.U.GetLabels()
		for _, l := range standardLabels {
			if labels[l] == "" {
				add(RuleLabels, "label %s is missing", l)
			}
		}
		if !clusterScoped[o.U.GetKind()] && o.U.GetNamespace() != namespace {
			add(RuleNamespace, "namespace is %q, want the release namespace %q", o.U.GetNamespace(), namespace)
		}
		var spec *corev1.PodSpec
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			spec = &t.Spec.Template.Spec
		case *appsv1.StatefulSet:
			spec = &t.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = &t.Spec.Template.Spec
		case *rbacv1.ClusterRole:
			if t.Labels["app.kubernetes.io/name"] == "prometheus" {
				vs = append(vs, checkPrometheusRBAC(ref, t)...)
			}
		}
		if spec == nil {
			continue
		}
		for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
			if !exactTag.MatchString(c.Image) {
				add(RulePinnedImage, "container %s image %q is not pinned to an exact version", c.Name, c.Image)
			}
		}
	}
	return vs
}

// checkPrometheusRBAC: discovery needs read access to these resources.
func checkPrometheusRBAC(ref string, cr *rbacv1.ClusterRole) Violations {
	need := []struct{ group, resource string }{
		{"", "nodes"}, {"", "nodes/metrics"}, {"", "services"}, {"", "endpoints"}, {"", "pods"},
		{"discovery.k8s.io", "endpointslices"},
	}
	var vs Violations
	for _, n := range need {
		for _, verb := range []string{"get", "list", "watch"} {
			if !policy.Allows(cr.Rules, n.group, n.resource, verb) {
				vs = append(vs, Violation{ref, RulePrometheusRBAC, fmt.Sprintf("does not allow %s on %s", verb, n.resource)})
			}
		}
	}
	return vs
}
