package deploy

import (
	"context"
	"fmt"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// History reports every stored revision with its images, verified mark,
// time and author. It changes nothing.
func (d *Deployer) History(ctx context.Context) *report.Result {
	r := d.newRun("history")
	history, err := d.rel.History(ctx)
	if err != nil {
		return r.finish(report.Failed, err, "Could not read the release history.")
	}
	r.res.History = history
	if len(history) == 0 {
		return r.finish(report.Reported, nil, "The release is not installed.")
	}
	verified := 0
	for _, h := range history {
		if h.Verified {
			verified++
		}
	}
	return r.finish(report.Reported, nil, fmt.Sprintf("%d revisions, %d verified; the current one is %d (%s).",
		len(history), verified, history[len(history)-1].Number, history[len(history)-1].Status))
}
