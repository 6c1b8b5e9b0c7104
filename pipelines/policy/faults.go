package policy

import (
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// FaultEnvPrefix starts the variables of the example API's fault switch
// (FAULT_ERROR_RATIO, FAULT_DELAY_MS, FAULT_DELAY_RATIO): requests failed or
// slowed on purpose, for canary analysis proofs in development.
const FaultEnvPrefix = "FAULT_"

// checkFaultInjection refuses the fault switch anywhere but development. The
// chart refuses services.<name>.faults there already; this rule also catches
// a variable that reached a pod some other way (a values file, a patched chart).
func checkFaultInjection(ctx Context, objs []render.Object) []Violation {
	if ctx.Environment == "development" {
		return nil
	}
	var out []Violation
	for _, w := range workloads(objs) {
		for _, nc := range containers(w.spec) {
			for _, e := range nc.c.Env {
				if strings.HasPrefix(e.Name, FaultEnvPrefix) {
					out = append(out, violation(RuleNoFaultInjection, w.ref,
						"%s: env %s injects faults; fault injection is for development only, never %s", nc.label, e.Name, ctx.Environment))
				}
			}
		}
	}
	return out
}
