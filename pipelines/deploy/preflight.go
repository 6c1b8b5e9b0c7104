package deploy

import (
	"context"
	"fmt"
	"strings"

	retry "github.com/sethvargo/go-retry"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// FieldManager names this pipeline in server-side dry runs.
const FieldManager = "krgeobuk-deploy"

// plan is what preflight established: the values to apply (images pinned
// by digest) and what they deploy. Nothing has changed yet.
type plan struct {
	values  map[string]any
	enabled []string
	images  []registry.Image
	objects []*unstructured.Unstructured
	// partial is set for a deploy of some services only.
	partial *partial
	// analysis is set when the analysis gate runs after readiness.
	analysis *analysis
	// canary is set when the new images first run as canaries, step by step.
	canary *canaryPlan
}

// preflight checks everything that can be checked before the cluster
// changes, in order of cost: the API server answers; every enabled
// component has an image that its registry serves (pinned to its digest);
// where the environment requires it, each image is signed with an accepted
// key and has its SBOM; the values match the chart's schema; the rendered manifests keep every
// policy rule; the API server accepts them in a server-side dry run.
func (d *Deployer) preflight(ctx context.Context, r *run, req Request) (plan, error) {
	var p plan
	if err := d.preflightAPI(ctx, r); err != nil {
		return p, err
	}
	layout := d.stack.Layout
	requested := values.Merge(d.stack.Values, req.Values)
	err := r.step("preflight/images", func() (string, error) {
		var err error
		if p.enabled, err = layout.Enabled(d.chart, requested); err != nil {
			return "", err
		}
		given := req.Images
		if len(req.Services) > 0 {
			if given, p.partial, err = d.keep(ctx, p.enabled, req); err != nil {
				return "", err
			}
		}
		images, fromChart, err := d.images(requested, p.enabled, given)
		if err != nil {
			return "", err
		}
		if p.images, err = d.resolver.ResolveAll(ctx, images); err != nil {
			return "", err
		}
		detail := fmt.Sprintf("%d images found in their registries and pinned by digest", len(p.images))
		if fromChart > 0 {
			detail += fmt.Sprintf(" (%d as the chart's values name them)", fromChart)
		}
		if p.partial != nil {
			detail += fmt.Sprintf(" (%d kept as verified revision %d runs them)", len(p.partial.kept), p.partial.base.Number)
		}
		return detail, nil
	})
	if err != nil {
		return p, err
	}
	if err := d.preflightSignatures(ctx, r, p.images); err != nil {
		return p, err
	}
	p.values = layout.Layer(d.stack.Values, req.Values, pins(p.images))
	var objs []render.Object
	err = r.step("preflight/render", func() (string, error) {
		res, err := render.Render(ctx, render.Request{Chart: d.chart, Release: d.stack.Release, Namespace: d.stack.Namespace, Values: p.values})
		if err != nil {
			return "", err
		}
		objs = res.Objects
		for _, o := range objs {
			p.objects = append(p.objects, o.U)
		}
		return fmt.Sprintf("values match the chart schema; %d objects rendered", len(objs)), nil
	})
	if err != nil {
		return p, err
	}
	if p.partial != nil {
		err = r.step("preflight/partial", func() (string, error) {
			if err := p.partial.unchangedOthers(p.objects); err != nil {
				return "", err
			}
			return fmt.Sprintf("only %s change; the other workloads render as verified revision %d runs them", strings.Join(req.Services, ", "), p.partial.base.Number), nil
		})
		if err != nil {
			return p, err
		}
	}
	err = r.step("preflight/policy", func() (string, error) {
		imagePolicy, err := layout.ImagePolicy(d.chart, p.values)
		if err != nil {
			return "", err
		}
		pctx := policy.Context{Environment: d.env.Name, RequireDigest: imagePolicy == values.PolicyDigest}
		if err := policy.Error(policy.Check(pctx, objs)); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d objects keep all %d policy rules", len(objs), len(policy.Rules())), nil
	})
	if err != nil {
		return p, err
	}
	err = r.step("preflight/dry-run", func() (string, error) {
		err := d.kc.DryRunApply(ctx, p.objects, FieldManager, func() retry.Backoff { return budget.API(d.budgets.DryRun) })
		return fmt.Sprintf("%d objects accepted by a server-side dry run", len(p.objects)), err
	})
	if err != nil {
		return p, err
	}
	if p.analysis, err = d.preflightAnalysis(ctx, r, p.objects); err != nil {
		return p, err
	}
	p.canary, err = d.preflightCanary(ctx, r, req, p)
	return p, err
}

// images is what preflight resolves: the request's images, which must name
// enabled components only and, for a stack whose images the pipeline builds
// (the apps), every one of them; for a stack that runs the images its
// chart names (the monitoring stack), those fill in what the request does
// not name, and fromChart counts them.
func (d *Deployer) images(requested map[string]any, enabled []string, given map[string]string) (map[string]string, int, error) {
	layout := d.stack.Layout
	if err := layout.CheckImages(enabled, given, !d.stack.ChartImages); err != nil {
		if !d.stack.ChartImages && len(given) > 0 && len(given) < len(enabled) {
			return nil, 0, fmt.Errorf("%w; to deploy some services only and keep the others as verified, name them with --service", err)
		}
		return nil, 0, err
	}
	if !d.stack.ChartImages {
		return given, 0, nil
	}
	out, err := layout.Configured(d.chart, requested)
	if err != nil {
		return nil, 0, err
	}
	fromChart := len(out)
	for name, ref := range given {
		out[name] = ref
		fromChart--
	}
	return out, fromChart, nil
}

func (d *Deployer) preflightAPI(ctx context.Context, r *run) error {
	return r.step("preflight/api", func() (string, error) {
		v, err := d.kc.Ping(ctx, kube.Budget(d.budgets.APIRead))
		if err != nil {
			return "", err
		}
		return "API server answers, version " + v, nil
	})
}

// pins are the image pins of the values layering, from the images preflight
// resolved.
func pins(images []registry.Image) map[string]values.Image {
	out := make(map[string]values.Image, len(images))
	for _, img := range images {
		out[img.Service] = values.Image{Repository: img.Repository, Digest: img.Digest, Tag: img.Tag}
	}
	return out
}
