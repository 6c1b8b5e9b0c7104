package request

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/promote"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Promotion copies the images verified in one environment to the
// repositories another deploys from, as a door received the request.
type Promotion struct {
	// From is the environment the images were verified in; To the one they
	// are promoted to.
	From, To string
	// Environments holds environments/<env>/; nil means the ones built in.
	Environments fs.FS
	// Images are verified service=repository@sha256:... pairs; none means
	// the newest verified revision of From's release, read with Kubeconfig.
	Images     []string
	Kubeconfig Source
	KubeAPI    func(ctx context.Context) (string, error)
	// ToRegistry replaces To's repositories with <registry>/<service>.
	ToRegistry string
	// Dest logs in to the destination registry, Source to the source one.
	Dest, Source Credentials
}

// Promote checks p, finds the verified images, plans the copies, copies
// them by digest and reads each back. It returns what happened to every
// image copied before an error, if any.
func Promote(ctx context.Context, p Promotion) ([]promote.Result, error) {
	if p.From == p.To {
		return nil, fmt.Errorf("promote: --from and --to are both %q", p.From)
	}
	fromEnv, err := loadEnv(p.Environments, p.From)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	toEnv, err := loadEnv(p.Environments, p.To)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	apps, err := render.LoadFS(charts.Apps, charts.AppsDir)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	verified, err := Images(p.Images)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if len(verified) == 0 && p.Kubeconfig == nil {
		return nil, fmt.Errorf("promote: give --image service=repository@digest, or --kubeconfig to read %s's verified revision", p.From)
	}
	p.Source.Flag = "source-"
	for _, c := range []Credentials{p.Dest, p.Source} {
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("promote: %w", err)
		}
	}
	dest, err := promote.Destinations(apps, toEnv, p.ToRegistry)
	if err != nil {
		return nil, err
	}
	if len(verified) > 0 {
		// Checked now, before anything is read or copied.
		if _, err := promote.Plan(verified, dest); err != nil {
			return nil, err
		}
	} else {
		d, err := connect(ctx, fromEnv, p.Kubeconfig, p.KubeAPI, Credentials{}, &report.Redactor{}, nil)
		if err != nil {
			return nil, fmt.Errorf("promote: %w", err)
		}
		history, err := d.Release().History(ctx)
		if err != nil {
			return nil, fmt.Errorf("promote: %s: %s", p.From, d.Redactor().String(err.Error()))
		}
		if verified, _, err = promote.Verified(history); err != nil {
			return nil, err
		}
	}
	plan, err := promote.Plan(verified, dest)
	if err != nil {
		return nil, err
	}
	opts := promote.Options{}
	if opts.Dest, _, err = p.Dest.Options(ctx); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if opts.Source, _, err = p.Source.Options(ctx); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	return promote.Run(ctx, plan, opts)
}

// Lines are a promotion's results as both doors print them, one per image.
func Lines(res []promote.Result) []string {
	out := make([]string, 0, len(res))
	for _, r := range res {
		what := "copied"
		if !r.Copied {
			what = "already present"
		}
		out = append(out, fmt.Sprintf("%s %s -> %s (%s)", r.Service, r.From, r.To, what))
	}
	return out
}
