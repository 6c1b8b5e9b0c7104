package request

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/promote"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Promotion copies the images of one environment's current verified
// revision to the repositories another deploys from, then deploys the
// copies there, as a door received the request.
type Promotion struct {
	// From is the environment the images were verified in; To the one they
	// are promoted to.
	From, To string
	// Environments holds environments/<env>/; nil means the ones built in.
	Environments fs.FS
	// Images, when given, name the services to promote (a partial deploy in
	// To): each service=repository@sha256:... must be the digest From's
	// current verified revision runs. None means every service it runs.
	Images []string
	// Kubeconfig reads From's release history (required: nothing is copied
	// that was not checked against it).
	Kubeconfig Source
	KubeAPI    func(ctx context.Context) (string, error)
	// ToRegistry replaces To's repositories with <registry>/<service>.
	ToRegistry string
	// Dest logs in to the destination registry, Source to the source one.
	Dest, Source Credentials
	// RegistryCA is a PEM bundle of CAs trusted beyond the system's on both
	// sides (--registry-ca): one bundle holds both registries' CAs when
	// they differ.
	RegistryCA Source

	// ToKubeconfig deploys the promoted references to To (required unless
	// CopyOnly); ToKubeAPI is its tunnel, as Op.KubeAPI.
	ToKubeconfig Source
	ToKubeAPI    func(ctx context.Context) (string, error)
	// CopyOnly stops after the copies: the promoted references are printed
	// for a later deploy.
	CopyOnly bool
	// ReadinessURLs, PrometheusURL, Format, Actor, Log and Verbose are the
	// deploy's, as in Op.
	ReadinessURLs []string
	PrometheusURL string
	Format        string
	Actor         string
	Log           io.Writer
	Verbose       bool
}

// Promoted is what a promotion did: the copies, then the deploy of the
// promoted references (nil when CopyOnly, or when it stopped before).
type Promoted struct {
	From, To string
	// Revision is From's verified revision the images were taken from.
	Revision int
	Copies   []promote.Result
	Deploy   *Outcome
}

// Promote checks p, reads From's current verified revision, checks any
// named images against it, plans and makes the copies (each digest read
// back), then deploys the promoted references (never the source ones) to To.
// An error before the deploy means nothing was deployed; Copies says what
// was copied before it.
func Promote(ctx context.Context, p Promotion) (*Promoted, error) {
	out := &Promoted{From: p.From, To: p.To}
	if p.From == p.To {
		return out, fmt.Errorf("promote: --from and --to are both %q", p.From)
	}
	fromEnv, err := loadEnv(p.Environments, p.From)
	if err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	toEnv, err := loadEnv(p.Environments, p.To)
	if err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	apps, err := render.LoadFS(charts.Apps, charts.AppsDir)
	if err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	named, err := Images(p.Images)
	if err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	if _, err := Pairs("--"+FlagReadinessURL, "URL", p.ReadinessURLs); err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	if err := CheckPrometheusURL(p.PrometheusURL); err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	if p.Format == "" {
		p.Format = Formats[0]
	}
	if err := CheckFormat(p.Format); err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	p.Source.Flag = "source-"
	for _, c := range []Credentials{p.Dest, p.Source} {
		if err := c.Check(); err != nil {
			return out, fmt.Errorf("promote: %w", err)
		}
	}
	dest, err := promote.Destinations(apps, toEnv, p.ToRegistry)
	if err != nil {
		return out, err
	}
	if len(named) > 0 {
		// Checked now, before anything is read or copied.
		if _, err := promote.Plan(named, dest); err != nil {
			return out, err
		}
	}
	if p.Kubeconfig == nil {
		return out, fmt.Errorf("promote: --kubeconfig is required: what is promoted must be what %s's current verified revision runs, read from its release", p.From)
	}
	if !p.CopyOnly && p.ToKubeconfig == nil {
		return out, fmt.Errorf("promote: --to-kubeconfig is required to deploy the promoted images to %s (or --copy-only to copy them without deploying)", p.To)
	}

	d, err := connect(ctx, fromEnv, p.Kubeconfig, p.KubeAPI, Credentials{}, &report.Redactor{}, nil)
	if err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	history, err := d.Release().History(ctx)
	if err != nil {
		return out, fmt.Errorf("promote: %s: %s", p.From, d.Redactor().String(err.Error()))
	}
	verified, rev, err := promote.Verified(history)
	if err != nil {
		return out, fmt.Errorf("%w (environment %s)", err, p.From)
	}
	out.Revision = rev
	var services []string // a partial deploy in To when a subset is named
	if len(named) > 0 {
		if verified, err = promote.Named(named, verified, p.From, rev); err != nil {
			return out, err
		}
		services = slices.Sorted(maps.Keys(verified))
	}
	plan, err := promote.Plan(verified, dest)
	if err != nil {
		return out, err
	}
	p.Dest.CA, p.Source.CA = p.RegistryCA, p.RegistryCA
	opts := promote.Options{SourceAccess: p.Source.Access(), DestAccess: p.Dest.Access()}
	if opts.Dest, _, err = p.Dest.Options(ctx); err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	if opts.Source, _, err = p.Source.Options(ctx); err != nil {
		return out, fmt.Errorf("promote: %w", err)
	}
	if err := promote.CheckSigned(ctx, plan, toEnv, opts); err != nil {
		return out, err
	}
	if out.Copies, err = promote.Run(ctx, plan, opts); err != nil || p.CopyOnly {
		return out, err
	}

	var images []string
	for _, c := range out.Copies {
		images = append(images, c.Service+"="+c.To)
	}
	out.Deploy = Run(ctx, Op{
		Command: Deploy, Env: p.To, Environments: p.Environments, Format: p.Format,
		Kubeconfig: p.ToKubeconfig, KubeAPI: p.ToKubeAPI, Registry: p.Dest, RegistryCA: p.RegistryCA,
		Images: images, Services: services, ReadinessURLs: p.ReadinessURLs, PrometheusURL: p.PrometheusURL,
		Actor: p.Actor, Log: p.Log, Verbose: p.Verbose,
	})
	return out, nil
}

// Lines are a promotion's copies as both doors print them, one per image.
func Lines(res []promote.Result) []string {
	out := make([]string, 0, len(res))
	for _, r := range res {
		what := "copied"
		if !r.Copied {
			what = "already present"
		}
		if r.Referrers > 0 {
			what += fmt.Sprintf(", with %d referrers (signatures, SBOMs)", r.Referrers)
		}
		out = append(out, fmt.Sprintf("%s %s -> %s (%s)", r.Service, r.From, r.To, what))
	}
	return out
}

// Head is what both doors print before the deploy's report: the revision
// the images came from and one line per copy; with no deploy, how to deploy
// the copies.
func (p *Promoted) Head() []string {
	var out []string
	if p.Revision > 0 {
		out = append(out, fmt.Sprintf("promote %s -> %s: the images of %s's verified revision %d", p.From, p.To, p.From, p.Revision))
	}
	out = append(out, Lines(p.Copies)...)
	if p.Deploy == nil && len(p.Copies) > 0 {
		out = append(out, "copied only: deploy the promoted references (after ->) with --image service=reference")
	}
	return out
}

// Text is what both doors print for a promotion: where the images came
// from, one line per copy, then the deploy's report. A deploy that is not
// OK is an error carrying all of it, as Outcome.Text.
func (p *Promoted) Text() (string, error) {
	var b strings.Builder
	for _, l := range p.Head() {
		b.WriteString(l + "\n")
	}
	if p.Deploy == nil {
		return b.String(), nil
	}
	b.WriteString("\n")
	report, err := p.Deploy.Text()
	if err != nil {
		return "", errors.New(b.String() + err.Error())
	}
	return b.String() + report, nil
}
