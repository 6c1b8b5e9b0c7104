package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/metricgate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// canaryPlan is what preflight settled for the canary steps: the verified
// revision whose pods stay as they are, the services that get a canary,
// and each step's values.
type canaryPlan struct {
	base     release.Revision
	services []canaryService
	steps    []canaryStep
}

// canaryService is one service whose new image runs as a canary.
type canaryService struct {
	service, deployment string
	// stable is how many pods the verified revision runs (its replicas, or
	// its HPA's minimum).
	stable int
}

// canaryStep is one Helm revision of the canary: the verified revision's
// values with each service's canary at the step's size.
type canaryStep struct {
	label  string
	values map[string]any
}

// preflightCanary plans the canary steps when the environment asks for them
// and the deploy can take them: the apps stack, a current verified revision
// to run beside, and changed scraped services whose only change is their
// image (a canary runs a new image; a new setting reaches every pod at
// once). Otherwise the step is skipped, saying why, and the new revision
// rolls out at once, analysed. A canary render that breaks a policy rule
// refuses the deploy.
func (d *Deployer) preflightCanary(ctx context.Context, r *run, req Request, p plan) (*canaryPlan, error) {
	cfg := d.env.Analysis
	if p.analysis == nil || cfg == nil || cfg.Canary == nil {
		return nil, nil
	}
	if d.stack.ChartImages {
		r.skip("preflight/canary", fmt.Sprintf("the %s stack deploys as a whole: no canary", d.stack.Name))
		return nil, nil
	}
	c, why, err := d.planCanary(ctx, req, p)
	switch {
	case err != nil:
		return nil, r.step("preflight/canary", func() (string, error) { return "", err })
	case why != "":
		r.skip("preflight/canary", why+": the new revision rolls out at once, analysed")
		return nil, nil
	}
	err = r.step("preflight/canary", func() (string, error) {
		names := make([]string, 0, len(c.services))
		for _, s := range c.services {
			names = append(names, s.service)
		}
		labels := make([]string, 0, len(c.steps))
		for _, st := range c.steps {
			labels = append(labels, st.label)
		}
		return fmt.Sprintf("%s first run as canaries beside verified revision %d (%s), each step watched %s", strings.Join(names, ", "),
			c.base.Number, strings.Join(labels, "; "), cfg.Duration), nil
	})
	return c, err
}

// planCanary returns the plan, or why there is none.
func (d *Deployer) planCanary(ctx context.Context, req Request, p plan) (*canaryPlan, string, error) {
	history, err := d.rel.History(ctx)
	if err != nil {
		return nil, "", err
	}
	base, err := release.CurrentVerified(history)
	if err != nil {
		return nil, "no verified revision to run a canary beside", nil
	}
	baseObjs, err := base.Objects()
	if err != nil {
		return nil, "", err
	}
	before := scraped(unwrap(baseObjs))
	now := scraped(p.objects)
	newImages := map[string]values.Image{}
	for _, img := range p.images {
		newImages[img.Service] = values.Image{Repository: img.Repository, Digest: img.Digest}
	}
	stablePins := pins(p.images)
	c := &canaryPlan{base: base}
	for _, n := range slices.Sorted(maps.Keys(now)) {
		o := now[n]
		old, ok := before[n]
		if ok && samePodTemplate(old, o) {
			continue
		}
		service := serviceOf(o)
		if !ok {
			return nil, fmt.Sprintf("%s is new since verified revision %d: there are no stable pods to run a canary beside", service, base.Number), nil
		}
		stable, ok := pinOf(base.Images[service])
		if !ok || newImages[service].Digest == "" {
			return nil, fmt.Sprintf("verified revision %d does not run %s by digest", base.Number, service), nil
		}
		stablePins[service] = stable
		c.services = append(c.services, canaryService{service: service, deployment: n, stable: replicasOf(baseObjs, n)})
	}
	if len(c.services) == 0 {
		return nil, "no service Prometheus scrapes changes", nil
	}
	layered := d.stack.Layout.Layer(d.stack.Values, req.Values, stablePins)
	steps := d.env.Analysis.Canary.Steps
	for i, st := range steps {
		images, replicas := map[string]values.Image{}, map[string]int{}
		var sizes []string
		for _, s := range c.services {
			images[s.service], replicas[s.service] = newImages[s.service], st.Replicas(s.stable)
			sizes = append(sizes, fmt.Sprintf("%s %d beside %d", s.service, replicas[s.service], s.stable))
		}
		canaries, err := values.CanaryPins(images, replicas)
		if err != nil {
			return nil, "", err
		}
		c.steps = append(c.steps, canaryStep{
			label:  fmt.Sprintf("canary %d/%d (%s): %s", i+1, len(steps), st, strings.Join(sizes, ", ")),
			values: values.Merge(layered, canaries),
		})
	}
	res, err := render.Render(ctx, render.Request{Chart: d.chart, Release: d.stack.Release, Namespace: d.stack.Namespace, Values: c.steps[0].values})
	if err != nil {
		return nil, "", fmt.Errorf("the canary's values: %w", err)
	}
	imagePolicy, err := d.stack.Layout.ImagePolicy(d.chart, c.steps[0].values)
	if err != nil {
		return nil, "", err
	}
	if err := policy.Error(policy.Check(policy.Context{Environment: d.env.Name, RequireDigest: imagePolicy == values.PolicyDigest}, res.Objects)); err != nil {
		return nil, "", fmt.Errorf("the canary's render: %w", err)
	}
	// The canary steps keep the stable pods of every canaried service as the
	// verified revision runs them: a deploy that changes more than their
	// images would roll them. The services Prometheus does not scrape take
	// their new images in the first step, as a deploy without canary would.
	canaried := map[string]bool{}
	for _, s := range c.services {
		canaried[s.service] = true
	}
	changed, err := changedWorkloads(base, unwrap(res.Objects), func(component string) bool { return canaried[component] })
	if err != nil {
		return nil, "", err
	}
	if len(changed) > 0 {
		return nil, fmt.Sprintf("the deploy changes more than images against verified revision %d (%s)", base.Number, strings.Join(changed, "; ")), nil
	}
	return c, "", nil
}

// pinOf reads repository@sha256:... back into an image pin.
func pinOf(ref string) (values.Image, bool) {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok || !strings.HasPrefix(digest, "sha256:") {
		return values.Image{}, false
	}
	return values.Image{Repository: repo, Digest: digest}, true
}

// replicasOf is how many pods the Deployment named runs in objs: its
// replicas, else the minimum of the HPA scaling it, else one.
func replicasOf(objs []render.Object, name string) int {
	for _, o := range objs {
		u := o.U
		switch {
		case u.GetKind() == "Deployment" && u.GetName() == name:
			if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); ok {
				return int(n)
			}
		case u.GetKind() == "HorizontalPodAutoscaler":
			if target, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name"); target == name {
				if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", "minReplicas"); ok {
					return int(n)
				}
			}
		}
	}
	return 1
}

// canary runs the plan's steps, each one Helm revision: the new images as
// canaries beside the verified revision's pods, behind the same Services,
// gated like any revision (rollout, readiness) and then watched for the
// analysis window against the thresholds and against the stable pods' own
// numbers. It returns the revision of the step that failed, with the
// failure, for the caller to remediate like any gate failure: the rollback
// to the verified revision removes every canary and leaves the stable pods
// as they were.
func (d *Deployer) canary(ctx context.Context, r *run, p plan) (release.Revision, error) {
	c := p.canary
	canaryCfg := d.env.Analysis.Canary
	var last release.Revision
	for i, st := range c.steps {
		prefix := fmt.Sprintf("canary/%d", i+1)
		var rev release.Revision
		err := r.step(prefix+"/release", func() (string, error) {
			var err error
			rev, err = d.rel.Apply(ctx, d.chart, st.values, release.ApplyOptions{DeployedBy: d.actor,
				Description: fmt.Sprintf("canary step %d/%d by %s", i+1, len(c.steps), d.actor)})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s applied as revision %d", st.label, rev.Number), nil
		})
		if err != nil && rev.Number == 0 && last.Number != 0 {
			// Helm refused this step before recording it: the previous
			// step's canaries still run, and are what to remediate.
			return last, err
		}
		r.res.Revision = rev.Number
		if err != nil {
			return rev, err
		}
		last = rev
		if _, err := d.gates(ctx, r, rev, prefix); err != nil {
			return rev, err
		}
		err = r.step(prefix+"/analysis", func() (string, error) {
			var jobs []analysisJob
			for _, s := range c.services {
				canaryHash, err := d.newReplicaSetHash(ctx, catalog.CanaryDeployment(s.deployment))
				if err != nil {
					return "", err
				}
				stableHash, err := d.newReplicaSetHash(ctx, s.deployment)
				if err != nil {
					return "", err
				}
				w := p.analysis.window
				w.Baseline = &metricgate.Baseline{Target: metricgate.Target{Service: s.service, Revision: stableHash},
					MaxRatioIncrease: canaryCfg.MaxRatioIncrease, MaxP95Factor: canaryCfg.MaxP95Factor}
				jobs = append(jobs, analysisJob{service: s.service, deployment: catalog.CanaryDeployment(s.deployment), hash: canaryHash, window: w, step: st.label})
			}
			passed, err := d.watch(ctx, r, p.analysis, jobs)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s within thresholds and beside the stable pods for %s", strings.Join(passed, ", "), p.analysis.window.Duration), nil
		})
		if err != nil {
			return rev, err
		}
	}
	return release.Revision{}, nil
}
