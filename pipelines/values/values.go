// Package values is the one owner of the krgeobuk-apps chart's values. It
// knows how a release's values are layered (chart defaults, then the
// environment's, then the request's, then the image pins), where a service's
// image lives in them (services.<name>.image.{repository,digest,tag}), which
// services they enable and which image policy they impose. Every other
// package asks here instead of walking the map itself, so a change of the
// chart's value layout is a change of this file.
package values

import (
	"crypto/sha256"
	"fmt"
	"sort"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Image policies an environment may impose (global.imagePolicy).
const (
	PolicyDigest = "digest"
	PolicyTag    = "tag"
)

// Image is where one service's image comes from.
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

// Layer returns the values a release is applied with: env under request
// under the image pins. The chart's own defaults are not copied in: Helm
// coalesces them when it renders, so a release records only what the
// pipeline chose. The result shares no map with its inputs.
func Layer(env, request map[string]any, pins map[string]Image) map[string]any {
	return Merge(Merge(env, request), Pins(pins))
}

// Pins returns the values that run each service at its image by digest:
// the tag is cleared, so nothing floating survives from a lower layer.
func Pins(images map[string]Image) map[string]any {
	services := map[string]any{}
	for svc, img := range images {
		services[svc] = map[string]any{"image": map[string]any{
			"repository": img.Repository, "digest": img.Digest, "tag": "",
		}}
	}
	return map[string]any{"services": services}
}

// Images reads back the image each service runs with vals (a release's
// recorded values): repository@digest, or repository:tag when no digest was
// pinned. Services without a repository are left out; nil when none has one.
func Images(vals map[string]any) map[string]string {
	out := map[string]string{}
	for svc, img := range imagesOf(vals) {
		if img.Repository != "" && (img.Digest != "" || img.Tag != "") {
			out[svc] = img.Ref()
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func imagesOf(vals map[string]any) map[string]Image {
	services, _ := vals["services"].(map[string]any)
	out := map[string]Image{}
	for name, v := range services {
		svc, _ := v.(map[string]any)
		img, _ := svc["image"].(map[string]any)
		repo, _ := img["repository"].(string)
		digest, _ := img["digest"].(string)
		tag, _ := img["tag"].(string)
		out[name] = Image{Repository: repo, Digest: digest, Tag: tag}
	}
	return out
}

// coalesce lays vals over the chart's defaults as Helm does at render time.
func coalesce(ch *chart.Chart, vals map[string]any) (map[string]any, error) {
	all, err := chartutil.CoalesceValues(ch, Merge(vals, nil))
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return all, nil
}

// Enabled lists the catalog services that chart ch deploys with vals (the
// chart's defaults count), in catalog order.
func Enabled(ch *chart.Chart, vals map[string]any) ([]catalog.Service, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return nil, err
	}
	services, _ := all["services"].(map[string]any)
	var out []catalog.Service
	for _, s := range catalog.All() {
		v, _ := services[s.Name].(map[string]any)
		if on, _ := v["enabled"].(bool); on {
			out = append(out, s)
		}
	}
	return out, nil
}

// Repositories returns the repository every catalog service deploys from
// with vals over chart ch's defaults. A service without one is an error.
func Repositories(ch *chart.Chart, vals map[string]any) (map[string]string, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return nil, err
	}
	imgs := imagesOf(all)
	out := map[string]string{}
	for _, s := range catalog.All() {
		repo := imgs[s.Name].Repository
		if repo == "" {
			return nil, fmt.Errorf("values: no image repository for service %s", s.Name)
		}
		out[s.Name] = repo
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
func ImagePolicy(ch *chart.Chart, vals map[string]any) (string, error) {
	all, err := coalesce(ch, vals)
	if err != nil {
		return "", err
	}
	g, _ := all["global"].(map[string]any)
	p, _ := g["imagePolicy"].(string)
	return p, nil
}

// CheckImages verifies that images names exactly the enabled services:
// every enabled service has an image, and no image is given for a service
// that is unknown or disabled.
func CheckImages(enabled []catalog.Service, images map[string]string) error {
	on := map[string]bool{}
	var missing, extra []string
	for _, s := range enabled {
		on[s.Name] = true
		if images[s.Name] == "" {
			missing = append(missing, s.Name)
		}
	}
	for name := range images {
		if !on[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	switch {
	case len(missing) > 0:
		return fmt.Errorf("no image given for enabled service(s) %v", missing)
	case len(extra) > 0:
		return fmt.Errorf("image given for service(s) %v that the environment does not deploy (known and enabled: %v)", extra, names(enabled))
	}
	return nil
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
