package deploy

import (
	"fmt"
	"sort"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// pinImages returns the values that set each service's image to its digest.
func pinImages(images []registry.Image) map[string]any {
	services := map[string]any{}
	for _, img := range images {
		services[img.Service] = map[string]any{"image": map[string]any{
			"repository": img.Repository, "digest": img.Digest, "tag": "",
		}}
	}
	return map[string]any{"services": services}
}

// enabledServices lists the catalog services the chart will deploy with
// values (chart defaults coalesced), in catalog order.
func enabledServices(ch *chart.Chart, values map[string]any) ([]catalog.Service, error) {
	all, err := chartutil.CoalesceValues(ch, render.MergeValues(values, nil))
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
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

// checkImageRequest verifies that every enabled service has an image and
// that no image is given for a service that is unknown or disabled.
func checkImageRequest(enabled []catalog.Service, images map[string]string) error {
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

func names(ss []catalog.Service) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}
