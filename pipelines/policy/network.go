package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

func services(objs []render.Object) map[string]*corev1.Service {
	out := map[string]*corev1.Service{}
	for _, o := range objs {
		if s, ok := o.Typed.(*corev1.Service); ok {
			out[s.Namespace+"/"+s.Name] = s
		}
	}
	return out
}

func checkIngressBackends(_ Context, objs []render.Object) []Violation {
	svcs := services(objs)
	var out []Violation
	for _, o := range objs {
		ing, ok := o.Typed.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		var backends []networkingv1.IngressBackend
		if ing.Spec.DefaultBackend != nil {
			backends = append(backends, *ing.Spec.DefaultBackend)
		}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				backends = append(backends, p.Backend)
			}
		}
		for _, b := range backends {
			if b.Service == nil {
				out = append(out, violation(RuleIngressBackend, o.Ref(), "a backend is not a Service"))
				continue
			}
			svc, found := svcs[ing.Namespace+"/"+b.Service.Name]
			if !found {
				out = append(out, violation(RuleIngressBackend, o.Ref(),
					"backend Service %q is not rendered in namespace %q (an Ingress can only route to its own namespace)",
					b.Service.Name, ing.Namespace))
				continue
			}
			if !servicePortExists(svc, b.Service.Port) {
				out = append(out, violation(RuleIngressBackend, o.Ref(), "backend Service %q has no port %s",
					b.Service.Name, portString(b.Service.Port)))
			}
		}
	}
	return out
}

func servicePortExists(svc *corev1.Service, p networkingv1.ServiceBackendPort) bool {
	for _, sp := range svc.Spec.Ports {
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return true
		}
	}
	return false
}

func portString(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return fmt.Sprintf("%q", p.Name)
	}
	return fmt.Sprint(p.Number)
}

func checkEgressDNS(_ Context, objs []render.Object) []Violation {
	var out []Violation
	for _, o := range objs {
		np, ok := o.Typed.(*networkingv1.NetworkPolicy)
		if !ok || !restrictsEgress(np) {
			continue
		}
		udp, tcp := false, false
		for _, rule := range np.Spec.Egress {
			if len(rule.Ports) == 0 {
				udp, tcp = true, true // all ports to these peers
			}
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.IntValue() != 53 {
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
		var missing []string
		if !udp {
			missing = append(missing, "UDP")
		}
		if !tcp {
			missing = append(missing, "TCP")
		}
		if len(missing) > 0 {
			out = append(out, violation(RuleEgressDNS, o.Ref(),
				"restricts egress but does not allow DNS (port 53 %s): name lookups of every selected pod would fail",
				strings.Join(missing, ", ")))
		}
	}
	return out
}

func restrictsEgress(np *networkingv1.NetworkPolicy) bool {
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeEgress {
			return true
		}
	}
	return len(np.Spec.Egress) > 0
}

func checkExternalEndpoints(_ Context, objs []render.Object) []Violation {
	slices := map[string][]*discoveryv1.EndpointSlice{}
	for _, o := range objs {
		if s, ok := o.Typed.(*discoveryv1.EndpointSlice); ok {
			key := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
			slices[key] = append(slices[key], s)
		}
	}
	var out []Violation
	for _, o := range objs {
		svc, ok := o.Typed.(*corev1.Service)
		if !ok || len(svc.Spec.Selector) > 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		found := slices[svc.Namespace+"/"+svc.Name]
		if len(found) == 0 {
			out = append(out, violation(RuleExternalEndpoints, o.Ref(),
				"selector-less Service has no EndpointSlice labelled %s=%s: it would route nowhere",
				discoveryv1.LabelServiceName, svc.Name))
			continue
		}
		addresses := 0
		ports := map[string]int32{}
		for _, s := range found {
			if s.Labels[discoveryv1.LabelManagedBy] == "endpointslice-controller.k8s.io" {
				out = append(out, violation(RuleExternalEndpoints, o.Ref(),
					"EndpointSlice %s claims the EndpointSlice controller as manager, which would delete it", s.Name))
			}
			for _, e := range s.Endpoints {
				addresses += len(e.Addresses)
			}
			for _, p := range s.Ports {
				if p.Name != nil && p.Port != nil {
					ports[*p.Name] = *p.Port
				}
			}
		}
		if addresses == 0 {
			out = append(out, violation(RuleExternalEndpoints, o.Ref(), "its EndpointSlices hold no address"))
		}
		for _, sp := range svc.Spec.Ports {
			want := sp.TargetPort.IntVal
			if want == 0 {
				want = sp.Port
			}
			if got, ok := ports[sp.Name]; !ok || got != want {
				out = append(out, violation(RuleExternalEndpoints, o.Ref(),
					"port %q (%d) has no matching EndpointSlice port", sp.Name, want))
			}
		}
	}
	return out
}
