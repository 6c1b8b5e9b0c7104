package deploy

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// partial is what a deploy of some services only (Request.Services) keeps:
// every other enabled component at the image of base, the current verified
// revision.
type partial struct {
	base release.Revision
	kept []report.Kept
}

// keep completes a partial request's images with those the current verified
// revision runs for every other enabled component. It refuses a request whose
// images are not exactly the services named, a stack whose images the
// pipeline does not build, a release with no current verified revision
// (first install, a failed rollback, an upgrade outside the pipeline), and
// a verified revision that does not run one of the others.
func (d *Deployer) keep(ctx context.Context, enabled []string, req Request) (map[string]string, *partial, error) {
	if d.stack.ChartImages {
		return nil, nil, fmt.Errorf("--service deploys some of the apps only; the %s stack deploys as a whole", d.stack.Name)
	}
	named := map[string]bool{}
	for _, s := range req.Services {
		if !slices.Contains(enabled, s) {
			return nil, nil, fmt.Errorf("--service %s: not a %s the environment deploys (known and enabled: [%s])", s, d.stack.Layout.Noun, strings.Join(enabled, " "))
		}
		if req.Images[s] == "" {
			return nil, nil, fmt.Errorf("--service %s: no image given for it", s)
		}
		named[s] = true
	}
	for s := range req.Images {
		if !named[s] {
			return nil, nil, fmt.Errorf("--image %s: not among the --service deployed (%s); a partial deploy takes images for those only", s, strings.Join(req.Services, ", "))
		}
	}
	history, err := d.rel.History(ctx)
	if err != nil {
		return nil, nil, err
	}
	base, err := release.CurrentVerified(history)
	if err != nil {
		return nil, nil, fmt.Errorf("a partial deploy keeps the other services at the current verified revision, and there is none: %w; deploy every service (no --service)", err)
	}
	images := map[string]string{}
	for s, ref := range req.Images {
		images[s] = ref
	}
	p := &partial{base: base}
	var missing []string
	for _, s := range enabled {
		if named[s] {
			continue
		}
		ref := base.Images[s]
		if ref == "" {
			missing = append(missing, s)
			continue
		}
		images[s] = ref
		p.kept = append(p.kept, report.Kept{Service: s, Image: ref, Revision: base.Number})
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("a partial deploy keeps the other services at verified revision %d, which does not run %s; deploy them too (--service) or every service",
			base.Number, strings.Join(missing, ", "))
	}
	return images, p, nil
}

// unchangedOthers refuses a partial deploy whose render would change a
// workload of a service it keeps (values that moved since the verified
// revision, a shared setting): only the named services may roll.
func (p *partial) unchangedOthers(objects []*unstructured.Unstructured) error {
	kept := map[string]bool{}
	for _, k := range p.kept {
		kept[k.Service] = true
	}
	changed, err := changedWorkloads(p.base, objects, func(component string) bool { return kept[component] })
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		return fmt.Errorf("a partial deploy changes only the services named, but against verified revision %d %s; deploy every service (no --service) to apply that",
			p.base.Number, strings.Join(changed, "; "))
	}
	return nil
}

// changedWorkloads lists, sorted, how each Deployment and StatefulSet of
// base whose component (app.kubernetes.io/name, else its name) is selected
// would change if objects were applied: removed, or its spec's first
// difference.
func changedWorkloads(base release.Revision, objects []*unstructured.Unstructured, selected func(component string) bool) ([]string, error) {
	before, err := base.Objects()
	if err != nil {
		return nil, err
	}
	now := map[string]*unstructured.Unstructured{}
	for _, o := range objects {
		now[o.GetKind()+"/"+o.GetName()] = o
	}
	var changed []string
	for _, o := range before {
		u := o.U
		kind := u.GetKind()
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		if !selected(serviceOf(u)) {
			continue
		}
		key := kind + "/" + u.GetName()
		after, ok := now[key]
		if !ok {
			changed = append(changed, key+" would be removed")
			continue
		}
		if path := firstDifference("spec", u.Object["spec"], after.Object["spec"]); path != "" {
			changed = append(changed, fmt.Sprintf("%s would change at %s", key, path))
		}
	}
	sort.Strings(changed)
	return changed, nil
}

// firstDifference is the path of the first place a and b differ, "" when
// they are equal.
func firstDifference(path string, a, b any) string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			if p := firstDifference(path+"."+k, am[k], bm[k]); p != "" {
				return p
			}
		}
		return ""
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			if p := firstDifference(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i]); p != "" {
				return p
			}
		}
		return ""
	}
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return path
}
