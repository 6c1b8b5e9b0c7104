package values

import (
	"fmt"
	"sort"
)

// CanaryPins returns the krgeobuk-apps values that run a canary of each
// service in images beside its stable pods (services.<name>.canary, which
// the chart renders as the Deployment <name>-canary): replicas[name] pods of
// images[name] pinned by digest, the tag cleared so nothing floating survives
// from a lower layer, exactly as Pins does for the stable image. Lay it over
// Layer's result. It refuses an image without a digest or a count below one.
func CanaryPins(images map[string]Image, replicas map[string]int) (map[string]any, error) {
	names := make([]string, 0, len(images))
	for name := range images {
		names = append(names, name)
	}
	sort.Strings(names)
	services := map[string]any{}
	for _, name := range names {
		img := images[name]
		if !Apps.known(name) {
			return nil, fmt.Errorf("canary of %s: not a service of %s", name, Apps.Chart)
		}
		if img.Repository == "" || img.Digest == "" {
			return nil, fmt.Errorf("canary of %s: image %q is not pinned by digest", name, img.Ref())
		}
		n := replicas[name]
		if n < 1 {
			return nil, fmt.Errorf("canary of %s: %d replicas; a canary runs at least one pod", name, n)
		}
		services[name] = map[string]any{"canary": map[string]any{
			"enabled": true, "replicas": n,
			"image": map[string]any{"repository": img.Repository, "digest": img.Digest, "tag": ""},
		}}
	}
	return map[string]any{"services": services}, nil
}

// CanaryOff returns the krgeobuk-apps values that remove the canary of each
// named service (its Deployment, Service and PDB are then not rendered).
func CanaryOff(services ...string) map[string]any {
	out := map[string]any{}
	for _, name := range services {
		out[name] = map[string]any{"canary": map[string]any{"enabled": false}}
	}
	return map[string]any{"services": out}
}
