package stackcheck

import (
	"fmt"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"

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

// CheckObjects applies the Kubernetes rules to every rendered object.
func CheckObjects(objs []render.Object, namespace string) Violations {
	var vs Violations
	services := map[string]*corev1.Service{}
	for _, o := range objs {
		if s, ok := o.Typed.(*corev1.Service); ok {
			services[s.Namespace+"/"+s.Name] = s
		}
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
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			vs = append(vs, checkPod(ref, &t.Spec.Template.Spec)...)
		case *appsv1.StatefulSet:
			claims := make([]string, 0, len(t.Spec.VolumeClaimTemplates))
			for _, c := range t.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Name)
			}
			vs = append(vs, checkPod(ref, &t.Spec.Template.Spec, claims...)...)
		case *appsv1.DaemonSet:
			vs = append(vs, checkPod(ref, &t.Spec.Template.Spec)...)
		case *networkingv1.Ingress:
			vs = append(vs, checkIngress(ref, t, services)...)
		case *networkingv1.NetworkPolicy:
			vs = append(vs, checkNetworkPolicyDNS(ref, t)...)
		case *rbacv1.ClusterRole:
			if t.Labels["app.kubernetes.io/name"] == "prometheus" {
				vs = append(vs, checkPrometheusRBAC(ref, t)...)
			}
		}
	}
	return vs
}

// checkPod applies the restricted profile, pinning, resources and probes to a
// pod template; claims are a StatefulSet's volume claim templates, which are
// writable volumes like emptyDirs.
func checkPod(ref string, spec *corev1.PodSpec, claims ...string) Violations {
	var vs Violations
	add := func(rule, format string, args ...any) {
		vs = append(vs, Violation{Object: ref, Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
	psc := spec.SecurityContext
	if psc == nil {
		add(RuleRestricted, "pod has no securityContext")
		psc = &corev1.PodSecurityContext{}
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		add(RuleRestricted, "pod securityContext.runAsNonRoot must be true")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		add(RuleRestricted, "pod securityContext.runAsUser must be a numeric non-root uid")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		add(RuleRestricted, "pod securityContext.seccompProfile.type must be RuntimeDefault")
	}
	writable := map[string]bool{}
	for _, c := range claims {
		writable[c] = true
	}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil || v.PersistentVolumeClaim != nil {
			writable[v.Name] = true
		}
	}
	all := append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		cname := "container " + c.Name
		if !exactTag.MatchString(c.Image) {
			add(RulePinnedImage, "%s image %q is not pinned to an exact version", cname, c.Image)
		}
		sc := c.SecurityContext
		if sc == nil {
			add(RuleRestricted, "%s has no securityContext", cname)
			sc = &corev1.SecurityContext{}
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add(RuleRestricted, "%s must set allowPrivilegeEscalation: false", cname)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			add(RuleRestricted, "%s must set readOnlyRootFilesystem: true", cname)
		}
		if sc.Capabilities == nil || !dropsAll(sc.Capabilities.Drop) {
			add(RuleRestricted, "%s must drop ALL capabilities", cname)
		}
		if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			add(RuleRestricted, "%s adds capabilities %v", cname, sc.Capabilities.Add)
		}
		if sc.Privileged != nil && *sc.Privileged {
			add(RuleRestricted, "%s is privileged", cname)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add(RuleRestricted, "%s runs as uid 0", cname)
		}
		for _, m := range c.VolumeMounts {
			if !m.ReadOnly && !writable[m.Name] {
				add(RuleRestricted, "%s mounts %s writable from a volume that is neither emptyDir nor a PVC", cname, m.MountPath)
			}
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[res]; !ok {
				add(RuleResources, "%s has no %s request", cname, res)
			}
			if _, ok := c.Resources.Limits[res]; !ok {
				add(RuleResources, "%s has no %s limit", cname, res)
			}
		}
		if c.LivenessProbe == nil {
			add(RuleProbes, "%s has no livenessProbe", cname)
		}
		if c.ReadinessProbe == nil {
			add(RuleProbes, "%s has no readinessProbe", cname)
		}
	}
	return vs
}

func dropsAll(caps []corev1.Capability) bool {
	for _, c := range caps {
		if strings.EqualFold(string(c), "ALL") {
			return true
		}
	}
	return false
}

// checkIngress demands that every backend is a Service rendered in the
// Ingress's own namespace with the referenced port: an Ingress cannot route
// across namespaces, which is how the seed's Grafana Ingress broke.
func checkIngress(ref string, ing *networkingv1.Ingress, services map[string]*corev1.Service) Violations {
	var vs Violations
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			if b == nil {
				vs = append(vs, Violation{ref, RuleIngressBackend, fmt.Sprintf("host %s path %s has no Service backend", r.Host, p.Path)})
				continue
			}
			svc, ok := services[ing.Namespace+"/"+b.Name]
			if !ok {
				vs = append(vs, Violation{ref, RuleIngressBackend, fmt.Sprintf(
					"host %s routes to Service %s, which is not rendered in the Ingress namespace %q", r.Host, b.Name, ing.Namespace)})
				continue
			}
			if !servicePortMatches(svc, b.Port) {
				vs = append(vs, Violation{ref, RuleIngressBackend, fmt.Sprintf(
					"host %s routes to Service %s port %s, which the Service does not expose", r.Host, b.Name, portString(b.Port))})
			}
		}
	}
	return vs
}

func servicePortMatches(svc *corev1.Service, port networkingv1.ServiceBackendPort) bool {
	for _, p := range svc.Spec.Ports {
		if (port.Name != "" && p.Name == port.Name) || (port.Name == "" && p.Port == port.Number) {
			return true
		}
	}
	return false
}

func portString(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Number)
}

// checkNetworkPolicyDNS: a policy that restricts egress must still let pods
// resolve names over UDP and TCP 53.
func checkNetworkPolicyDNS(ref string, np *networkingv1.NetworkPolicy) Violations {
	restrictsEgress := false
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeEgress {
			restrictsEgress = true
		}
	}
	if !restrictsEgress {
		return nil
	}
	udp, tcp := false, false
	for _, rule := range np.Spec.Egress {
		if len(rule.Ports) == 0 && len(rule.To) == 0 {
			return nil // allows all egress
		}
		if len(rule.To) != 0 {
			continue // DNS servers live outside any selector we could name here
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.IntValue() != 53 {
				continue
			}
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			udp = udp || proto == corev1.ProtocolUDP
			tcp = tcp || proto == corev1.ProtocolTCP
		}
	}
	if udp && tcp {
		return nil
	}
	return Violations{{ref, RuleNetworkPolicyDNS, fmt.Sprintf("egress is restricted but DNS is not allowed (udp/53 %v, tcp/53 %v)", udp, tcp)}}
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
			if !allows(cr.Rules, n.group, n.resource, verb) {
				vs = append(vs, Violation{ref, RulePrometheusRBAC, fmt.Sprintf("does not allow %s on %s", verb, n.resource)})
			}
		}
	}
	return vs
}

func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if contains(r.APIGroups, group) && contains(r.Resources, resource) && contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s || v == "*" {
			return true
		}
	}
	return false
}
