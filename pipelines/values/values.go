// Package values is the one owner of the charts' values. It knows how a
// release's values are layered (chart defaults, then the environment's, then
// the request's, then the image pins), and, for each chart the pipeline
// deploys (a Layout), where a component's image lives in them
// (services.<name>.image in krgeobuk-apps, <component>.image in
// monitoring-stack), which components they enable and which image policy
// they impose. Every other package asks here instead of walking the map
// itself, so a change of a chart's value layout is a change of this package.
package values

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Image policies an environment may impose (global.imagePolicy in
// krgeobuk-apps, imagePolicy in monitoring-stack).
const (
	PolicyDigest = "digest"
	PolicyTag    = "tag"
)

// Image is where one component's image comes from.
type Image struct {
	Repository string
	// Digest is "sha256:..."; when set it wins over Tag.
	Digest string
	Tag    string
}

// Ref is repository@digest, or repository:tag when no digest is set.
func (i Image) Ref() string {
	if i.Digest != "" {
		return i.Repository + "@" + i.Digest
	}
	return i.Repository + ":" + i.Tag
}

// Layout is where one chart keeps what the pipeline reads and writes in its
// values: each component's image map (repository, digest, tag), its
// enabled switch beside it, and the image policy.
type Layout struct {
	// Chart is the chart's name, for messages.
	Chart string
	// Noun is what the chart calls a component in messages ("service").
	Noun string
	// Components are the chart's deployable components, in deploy order.
	Components []string
	// root is the key holding one map per component ("services"), or empty
	// when components are top-level keys.
	root string
	// policy is the path of the image policy value.
	policy []string
	// keepTag keeps the tag beside a pinned digest: the chart requires an
	// exact tag for people to read, and a digest wins over it anyway.
	keepTag bool
}

// Apps is the krgeobuk-apps umbrella: services.<name>.{image,enabled} for
// every catalog service, global.imagePolicy.
var Apps = Layout{
	Chart: "krgeobuk-apps", Noun: "service", Components: catalog.Names(),
	root: "services", policy: []string{"global", "imagePolicy"},
}

// Monitoring is the monitoring-stack chart: <component>.{image,enabled} for
// Prometheus, Alertmanager and Grafana, a top-level imagePolicy.
var Monitoring = Layout{
	Chart: "monitoring-stack", Noun: "component", Components: []string{"prometheus", "alertmanager", "grafana"},
	policy: []string{"imagePolicy"}, keepTag: true,
}

// components returns the map of component maps inside vals.
func (l Layout) components(vals map[string]any) map[string]any {
	if l.root == "" {
		return vals
	}
	m, _ := vals[l.root].(map[string]any)
	return m
}

// wrap puts per-component maps where the layout keeps them.
func (l Layout) wrap(components map[string]any) map[string]any {
	if l.root == "" {
		return components
	}
	return map[string]any{l.root: components}
}

// Layer returns the values a release is applied with: env under request
// under the image pins. The chart's own defaults are not copied in: Helm
// coalesces them when it renders, so a release records only what the
// pipeline chose. The result shares no map with its inputs.
func (l Layout) Layer(env, request map[string]any, pins map[string]Image) map[string]any {
	return Merge(Merge(env, request), l.Pins(pins))
}

// Pins returns the values that run each component at its image by digest.
// Nothing floating survives from a lower layer: in the apps the tag is
// cleared; in the monitoring stack, whose schema wants an exact tag beside
// the digest for people, a pin's tag replaces the lower one and an empty tag
// keeps it (the digest wins over it when the image is pulled).
func (l Layout) Pins(images map[string]Image) map[string]any {
	components := map[string]any{}
	for name, img := range images {
		m := map[string]any{"repository": img.Repository, "digest": img.Digest}
		switch {
		case !l.keepTag:
			m["tag"] = ""
		case img.Tag != "":
			m["tag"] = img.Tag
		}
		components[name] = map[string]any{"image": m}
	}
	return l.wrap(components)
}

// Images reads back the image each component runs with vals (a release's
// recorded values): repository@digest, or repository:tag when no digest was
// pinned. Components without a repository are left out; nil when none has
// one.
func (l Layout) Images(vals map[string]any) map[string]string {
	out := map[string]string{}
	for name, img := range l.imagesOf(vals) {
		if img.Repository != "" && (img.Digest != "" || img.Tag != "") {
			out[name] = img.Ref()
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// imagesOf reads the image map of every component the layout knows (all of
// services.* in the apps, whose keys are the services).
func (l Layout) imagesOf(vals map[string]any) map[string]Image {
	comps := l.components(vals)
	out := map[string]Image{}
	for name, v := range comps {
		if l.root == "" && !l.known(name) {
			continue
		}
		c, _ := v.(map[string]any)
		img, _ := c["image"].(map[string]any)
		repo, _ := img["repository"].(string)
		digest, _ := img["digest"].(string)
		tag, _ := img["tag"].(string)
		out[name] = Image{Repository: repo, Digest: digest, Tag: tag}
	}
	return out
}

func (l Layout) known(name string) bool {
	for _, c := range l.Components {
		if c == name {
			return true
		}
	}
	return false
}

// coalesce lays vals over the chart's defaults as Helm does at render time.
func coalesce(ch *chart.Chart, vals map[string]any) (map[string]any, error) {
	all, err := chartutil.CoalesceValues(ch, Merge(vals, nil))
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return all, nil
}

// Enabled lists the components that chart ch deploys with vals (the chart's
// defaults count), in the layout's order.
func (l Layout) Enabled(ch *chart.Chart, vals map[string]any) ([]string, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return nil, err
	}
	comps := l.components(all)
	var out []string
	for _, name := range l.Components {
		v, _ := comps[name].(map[string]any)
		if on, _ := v["enabled"].(bool); on {
			out = append(out, name)
		}
	}
	return out, nil
}

// Configured returns the image every enabled component runs with vals over
// chart ch's defaults, before any pin: for a chart whose images are
// released upstream (the monitoring stack names exact Prometheus,
// Alertmanager and Grafana versions), what a deploy resolves when the
// request names no other image. A component without a repository, or with
// neither a tag nor a digest, is an error.
func (l Layout) Configured(ch *chart.Chart, vals map[string]any) (map[string]string, error) {
	enabled, err := l.Enabled(ch, vals)
	if err != nil {
		return nil, err
	}
	all, err := coalesce(ch, vals)
	if err != nil {
		return nil, err
	}
	imgs := l.imagesOf(all)
	out := map[string]string{}
	for _, name := range enabled {
		img := imgs[name]
		if img.Repository == "" || (img.Digest == "" && img.Tag == "") {
			return nil, fmt.Errorf("values: %s %s has no image repository and tag or digest in %s", l.Noun, name, l.Chart)
		}
		out[name] = img.Ref()
	}
	return out, nil
}

// Repositories returns the repository every component deploys from with
// vals over chart ch's defaults. A component without one is an error.
func (l Layout) Repositories(ch *chart.Chart, vals map[string]any) (map[string]string, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return nil, err
	}
	imgs := l.imagesOf(all)
	out := map[string]string{}
	for _, name := range l.Components {
		repo := imgs[name].Repository
		if repo == "" {
			return nil, fmt.Errorf("values: no image repository for %s %s", l.Noun, name)
		}
		out[name] = repo
	}
	return out, nil
}

// JWTSecret names the Secret API service reads its JWT key pairs from with
// vals over chart ch's defaults: jwt.existingSecret, or catalog.JWTSecret.
func JWTSecret(ch *chart.Chart, vals map[string]any, service string) (string, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return "", err
	}
	services, _ := all["services"].(map[string]any)
	svc, _ := services[service].(map[string]any)
	jwt, _ := svc["jwt"].(map[string]any)
	if name, _ := jwt["existingSecret"].(string); name != "" {
		return name, nil
	}
	return catalog.JWTSecret(service), nil
}

// ImagePolicy is the image policy vals impose over chart ch's default:
// PolicyDigest or PolicyTag.
func (l Layout) ImagePolicy(ch *chart.Chart, vals map[string]any) (string, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return "", err
	}
	var v any = all
	for _, k := range l.policy {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	p, _ := v.(string)
	return p, nil
}

// CheckImages verifies that images names only enabled components and, with
// all, every one of them: no image is given for a component that is unknown
// or disabled.
func (l Layout) CheckImages(enabled []string, images map[string]string, all bool) error {
	on := map[string]bool{}
	var missing, extra []string
	for _, name := range enabled {
		on[name] = true
		if images[name] == "" {
			missing = append(missing, name)
		}
	}
	for name := range images {
		if !on[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	switch {
	case all && len(missing) > 0:
		return fmt.Errorf("no image given for enabled %s(s) %v", l.Noun, missing)
	case len(extra) > 0:
		return fmt.Errorf("image given for %s(s) %v that the environment does not deploy (known and enabled: %s)",
			l.Noun, extra, "["+strings.Join(enabled, " ")+"]")
	}
	return nil
}

// Layer is Apps.Layer.
func Layer(env, request map[string]any, pins map[string]Image) map[string]any {
	return Apps.Layer(env, request, pins)
}

// Pins is Apps.Pins.
func Pins(images map[string]Image) map[string]any { return Apps.Pins(images) }

// Images is Apps.Images.
func Images(vals map[string]any) map[string]string { return Apps.Images(vals) }

// Enabled lists the catalog services that chart ch deploys with vals (the
// chart's defaults count), in catalog order.
func Enabled(ch *chart.Chart, vals map[string]any) ([]catalog.Service, error) {
	names, err := Apps.Enabled(ch, vals)
	if err != nil {
		return nil, err
	}
	out := make([]catalog.Service, 0, len(names))
	for _, n := range names {
		s, err := catalog.Lookup(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Repositories is Apps.Repositories: the repository every catalog service
// deploys from.
func Repositories(ch *chart.Chart, vals map[string]any) (map[string]string, error) {
	return Apps.Repositories(ch, vals)
}

// ImagePolicy is Apps.ImagePolicy.
func ImagePolicy(ch *chart.Chart, vals map[string]any) (string, error) {
	return Apps.ImagePolicy(ch, vals)
}

// CheckImages verifies that images names exactly the enabled services:
// every enabled service has an image, and no image is given for a service
// that is unknown or disabled.
func CheckImages(enabled []catalog.Service, images map[string]string) error {
	return Apps.CheckImages(names(enabled), images, true)
}

// StandInPins pins every catalog service to a made-up digest of its own
// repository in vals. It is for renders that need no real image (an
// environment demanding digests refuses to render without one), such as
// reading the environment a service's container would receive.
func StandInPins(vals map[string]any) map[string]any {
	services := map[string]any{}
	for _, s := range catalog.All() {
		// Only the digest: the repository stays the environment's or the chart's.
		services[s.Name] = map[string]any{"image": map[string]any{
			"digest": fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("stand-in "+s.Name))),
		}}
	}
	return Merge(vals, map[string]any{"services": services})
}

func names(ss []catalog.Service) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// Merge returns base with over laid on top the way Helm layers values
// files: maps merge key by key, anything else in over replaces what base had.
// The result shares no map or slice with either input, so layering the same
// environment values into many releases never lets one change another.
func Merge(base, over map[string]any) map[string]any {
	out := copyValues(base)
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = Merge(bm, om)
				continue
			}
		}
		out[k] = copyValue(v)
	}
	return out
}

// copyValues deep-copies values so that Helm's in-place coalescing never
// mutates a caller's map (environment values are reused across renders).
func copyValues(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, val := range v {
		out[k] = copyValue(val)
	}
	return out
}

func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return copyValues(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	default:
		return v
	}
}
