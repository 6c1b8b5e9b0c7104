// Package policy checks rendered manifests against the rules every krgeobuk release must keep.
// Each rule has a name; a violation names the rule, the object and what is wrong, so the same
// checks serve the validation suite (make test) and the deploy preflight.
package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// Context is what the rules need to know about where the manifests will be applied.
type Context struct {
	// Environment is development, staging or production.
	Environment string
	// RequireDigest demands every image be pinned by digest.
	RequireDigest bool
}

// ProtectedEnvironment reports whether env must never carry secret literals.
func ProtectedEnvironment(env string) bool { return env == "staging" || env == "production" }

// Violation is one broken rule on one object.
type Violation struct {
	Rule    string
	Object  string
	Message string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s: %s", v.Rule, v.Object, v.Message) }

// Rule is a named check over a whole render (some rules relate objects to each other).
type Rule struct {
	Name string
	// Doc says what the rule guarantees, for reports and the README.
	Doc   string
	check func(Context, []render.Object) []Violation
}

// Rules returns every rule, in a stable order.
func Rules() []Rule {
	return []Rule{
		{RuleImageDigest, "no floating tag; a digest wherever the environment demands one", checkImages},
		{RuleResources, "cpu and memory requests and limits on every container", checkResources},
		{RuleProbes, "liveness and readiness probes on every long-running container", checkProbes},
		{RuleRestricted, "the restricted Pod Security profile on every pod", checkRestricted},
		{RuleIngressBackend, "every Ingress backend is a Service of the same namespace with that port", checkIngressBackends},
		{RuleEgressDNS, "every NetworkPolicy that restricts egress allows DNS over UDP and TCP", checkEgressDNS},
		{RuleNoSecretLiterals, "no secret literals in staging or production", checkSecretLiterals},
		{RuleExternalEndpoints, "every selector-less Service has an EndpointSlice with addresses and its ports", checkExternalEndpoints},
		{RuleNoFaultInjection, "no fault injection (FAULT_* variables) outside development", checkFaultInjection},
	}
}

// Rule names.
const (
	RuleImageDigest       = "image-digest"
	RuleResources         = "resources"
	RuleProbes            = "probes"
	RuleRestricted        = "restricted-security"
	RuleIngressBackend    = "ingress-backend"
	RuleEgressDNS         = "egress-dns"
	RuleNoSecretLiterals  = "no-secret-literals"
	RuleExternalEndpoints = "external-endpoints"
	RuleDeployerRBAC      = "deployer-rbac"
	RuleNoFaultInjection  = "no-fault-injection"
)

// Check runs every rule and returns the violations sorted by rule, object and message.
func Check(ctx Context, objs []render.Object) []Violation {
	var out []Violation
	for _, r := range Rules() {
		out = append(out, r.check(ctx, objs)...)
	}
	sortViolations(out)
	return out
}

// Error turns violations into one error listing each on its own line, or nil when there are none.
func Error(vs []Violation) error {
	if len(vs) == 0 {
		return nil
	}
	errs := make([]error, len(vs))
	for i, v := range vs {
		errs[i] = errors.New(v.String())
	}
	return fmt.Errorf("%d policy violation(s):\n%w", len(vs), errors.Join(errs...))
}

func sortViolations(vs []Violation) {
	sort.Slice(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Message < b.Message
	})
}

// workload is a pod template found in a rendered object.
type workload struct {
	ref  string
	spec *corev1.PodSpec
	// claims are a StatefulSet's volume claim templates: writable volumes like emptyDirs.
	claims []string
}

func workloads(objs []render.Object) []workload {
	var out []workload
	for _, o := range objs {
		var spec *corev1.PodSpec
		var claims []string
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			spec = &t.Spec.Template.Spec
		case *appsv1.StatefulSet:
			spec = &t.Spec.Template.Spec
			for _, c := range t.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Name)
			}
		case *appsv1.DaemonSet:
			spec = &t.Spec.Template.Spec
		case *appsv1.ReplicaSet:
			spec = &t.Spec.Template.Spec
		case *batchv1.Job:
			spec = &t.Spec.Template.Spec
		case *batchv1.CronJob:
			spec = &t.Spec.JobTemplate.Spec.Template.Spec
		case *corev1.Pod:
			spec = &t.Spec
		default:
			continue
		}
		out = append(out, workload{ref: o.Ref(), spec: spec, claims: claims})
	}
	return out
}

// containers yields every container of a pod spec with a label saying which kind it is.
func containers(spec *corev1.PodSpec) []namedContainer {
	var out []namedContainer
	for i := range spec.InitContainers {
		out = append(out, namedContainer{"init container " + spec.InitContainers[i].Name, &spec.InitContainers[i], true})
	}
	for i := range spec.Containers {
		out = append(out, namedContainer{"container " + spec.Containers[i].Name, &spec.Containers[i], false})
	}
	return out
}

type namedContainer struct {
	label string
	c     *corev1.Container
	init  bool
}

func violation(rule, ref, format string, args ...any) Violation {
	return Violation{Rule: rule, Object: ref, Message: fmt.Sprintf(format, args...)}
}

func checkImages(ctx Context, objs []render.Object) []Violation {
	var out []Violation
	for _, w := range workloads(objs) {
		for _, nc := range containers(w.spec) {
			img := nc.c.Image
			name, digest, _ := strings.Cut(img, "@")
			tag := ""
			if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
				tag = name[i+1:]
			}
			switch {
			case digest != "" && !strings.HasPrefix(digest, "sha256:"):
				out = append(out, violation(RuleImageDigest, w.ref, "%s: image %q has a malformed digest", nc.label, img))
			case digest != "":
			case ctx.RequireDigest:
				out = append(out, violation(RuleImageDigest, w.ref, "%s: image %q is not pinned by digest (environment %s deploys by digest only)", nc.label, img, ctx.Environment))
			case tag == "" || tag == "latest":
				out = append(out, violation(RuleImageDigest, w.ref, "%s: image %q uses a floating tag", nc.label, img))
			}
		}
	}
	return out
}

func checkResources(_ Context, objs []render.Object) []Violation {
	var out []Violation
	for _, w := range workloads(objs) {
		for _, nc := range containers(w.spec) {
			var missing []string
			for _, kind := range []struct {
				name string
				list corev1.ResourceList
			}{{"requests", nc.c.Resources.Requests}, {"limits", nc.c.Resources.Limits}} {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if q, ok := kind.list[r]; !ok || q.IsZero() {
						missing = append(missing, kind.name+"."+string(r))
					}
				}
			}
			if len(missing) > 0 {
				out = append(out, violation(RuleResources, w.ref, "%s: missing %s", nc.label, strings.Join(missing, ", ")))
			}
		}
	}
	return out
}

func checkProbes(_ Context, objs []render.Object) []Violation {
	var out []Violation
	for _, w := range workloads(objs) {
		for _, nc := range containers(w.spec) {
			if nc.init {
				continue // init containers run to completion; probes do not apply
			}
			if nc.c.LivenessProbe == nil {
				out = append(out, violation(RuleProbes, w.ref, "%s: no livenessProbe", nc.label))
			}
			if nc.c.ReadinessProbe == nil {
				out = append(out, violation(RuleProbes, w.ref, "%s: no readinessProbe", nc.label))
			}
		}
	}
	return out
}

func checkRestricted(_ Context, objs []render.Object) []Violation {
	var out []Violation
	for _, w := range workloads(objs) {
		add := func(format string, args ...any) { out = append(out, violation(RuleRestricted, w.ref, format, args...)) }
		s := w.spec
		if s.HostNetwork || s.HostPID || s.HostIPC {
			add("pod shares a host namespace (hostNetwork/hostPID/hostIPC)")
		}
		writable := map[string]bool{}
		for _, c := range w.claims {
			writable[c] = true
		}
		for _, v := range s.Volumes {
			if v.HostPath != nil {
				add("volume %s mounts a hostPath", v.Name)
			}
			if v.EmptyDir != nil || v.PersistentVolumeClaim != nil {
				writable[v.Name] = true
			}
		}
		psc := s.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
			add("pod securityContext runs as uid 0")
		}
		for _, nc := range containers(s) {
			sc := nc.c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			if sc.Privileged != nil && *sc.Privileged {
				add("%s: privileged", nc.label)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				add("%s: allowPrivilegeEscalation must be false", nc.label)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				add("%s: readOnlyRootFilesystem must be true", nc.label)
			}
			if !dropsAll(sc.Capabilities) {
				add("%s: capabilities must drop ALL", nc.label)
			}
			if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
				add("%s: adds capabilities %v", nc.label, sc.Capabilities.Add)
			}
			if !firstTrue(sc.RunAsNonRoot, psc.RunAsNonRoot) {
				add("%s: runAsNonRoot must be true (container or pod)", nc.label)
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				add("%s: runs as uid 0", nc.label)
			}
			if !runtimeDefault(sc.SeccompProfile, psc.SeccompProfile) {
				add("%s: seccompProfile must be RuntimeDefault or Localhost (container or pod)", nc.label)
			}
			// A read-only root is only real if nothing shared is mounted writable.
			for _, m := range nc.c.VolumeMounts {
				if !m.ReadOnly && !writable[m.Name] {
					add("%s: mounts %s writable from a volume that is neither emptyDir nor a PVC", nc.label, m.MountPath)
				}
			}
		}
	}
	return out
}

func dropsAll(c *corev1.Capabilities) bool {
	if c == nil {
		return false
	}
	for _, d := range c.Drop {
		if d == "ALL" {
			return true
		}
	}
	return false
}

func firstTrue(container, pod *bool) bool {
	if container != nil {
		return *container
	}
	return pod != nil && *pod
}

func runtimeDefault(container, pod *corev1.SeccompProfile) bool {
	p := container
	if p == nil {
		p = pod
	}
	return p != nil && (p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost)
}
