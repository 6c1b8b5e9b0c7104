package policy

import (
	"regexp"

	corev1 "k8s.io/api/core/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// secretish matches names that carry credentials by convention.
var secretish = regexp.MustCompile(`(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|credential)`)

func checkSecretLiterals(ctx Context, objs []render.Object) []Violation {
	if !ProtectedEnvironment(ctx.Environment) {
		return nil
	}
	var out []Violation
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *corev1.Secret:
			if len(t.Data) > 0 || len(t.StringData) > 0 {
				out = append(out, violation(RuleNoSecretLiterals, o.Ref(),
					"renders %d secret value(s) into the manifest in %s; reference an existing Secret instead",
					len(t.Data)+len(t.StringData), ctx.Environment))
			}
		case *corev1.ConfigMap:
			for k := range t.Data {
				if secretish.MatchString(k) {
					out = append(out, violation(RuleNoSecretLiterals, o.Ref(), "key %s looks like a credential in a ConfigMap", k))
				}
			}
		}
	}
	for _, w := range workloads(objs) {
		for _, nc := range containers(w.spec) {
			for _, e := range nc.c.Env {
				if e.Value != "" && secretish.MatchString(e.Name) {
					out = append(out, violation(RuleNoSecretLiterals, w.ref,
						"%s: env %s is set to a literal; use valueFrom.secretKeyRef", nc.label, e.Name))
				}
			}
		}
	}
	return out
}
