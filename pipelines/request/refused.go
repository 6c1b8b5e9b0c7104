package request

import (
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Refused is the report of a run that could not start (bad input, no
// kubeconfig, an unreachable secret): nothing changed. env may be nil when
// the environment itself was the problem. The error passes through red.
func Refused(command string, env *environment.Environment, err error, red *report.Redactor) *report.Result {
	res := &report.Result{Command: command, Verdict: report.Refused, StartedAt: time.Now().UTC()}
	if env != nil {
		res.Environment, res.Namespace, res.Release = env.Name, env.Namespace, env.Release
	}
	res.Error = red.String(err.Error())
	res.Summary = "Refused before anything changed: " + res.Error
	return res
}
