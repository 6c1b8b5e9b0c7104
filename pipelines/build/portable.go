package build

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// A multi-platform image is built once, on the engine's own platform, and
// assembled for each platform from that platform's base image: npm, tsc and
// vite run natively (under emulation npm is tens of times slower), and only
// the runtime image is per platform. That is sound as long as what is
// copied runs anywhere: an SPA's static files always do, an API's
// production node_modules only when no package in it is built for one CPU or
// OS. The two checks below refuse, before anything is published, the APIs
// for which it is not.

// ForeignPlatforms are the platforms of platforms (as CheckPlatforms returns
// them) other than native, the engine's own ("" stands for it).
func ForeignPlatforms(platforms []string, native string) []string {
	var out []string
	for _, p := range platforms {
		if p != "" && p != native {
			out = append(out, p)
		}
	}
	return out
}

// PortableError says why an API's built node_modules cannot be copied into
// an image of another platform.
type PortableError struct {
	Service   string
	Platforms []string
	// Packages are the lockfile paths, or files, that tie it to one platform.
	Packages []string
	Reason   string
}

func (e *PortableError) Error() string {
	return fmt.Sprintf("build %s for %s: %s (%s); the module builds on the engine's platform and copies node_modules, so "+
		"build this service on an engine of that platform, or leave the platform out",
		e.Service, strings.Join(e.Platforms, ", "), e.Reason, strings.Join(e.Packages, ", "))
}

// CheckLockfilePortable refuses production packages of an npm lockfile
// (version 2 or 3) that declare the CPUs or OSes they run on: prebuilt
// binaries npm picks for the platform it runs on.
func CheckLockfilePortable(service string, foreign []string, lock []byte) error {
	if len(foreign) == 0 {
		return nil
	}
	var lf struct {
		Packages map[string]struct {
			Dev bool     `json:"dev"`
			CPU []string `json:"cpu"`
			OS  []string `json:"os"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(lock, &lf); err != nil {
		return fmt.Errorf("build %s: package-lock.json: %w", service, err)
	}
	if lf.Packages == nil {
		return fmt.Errorf("build %s: package-lock.json has no packages map (lockfile version 2 or 3 needed to tell what is platform-specific)", service)
	}
	var tied []string
	for p, pkg := range lf.Packages {
		if p != "" && !pkg.Dev && (len(pkg.CPU) > 0 || len(pkg.OS) > 0) {
			tied = append(tied, p)
		}
	}
	return refuse(service, foreign, tied, "production dependencies are prebuilt for one CPU or OS")
}

// CheckAddonsPortable refuses compiled Node.js addons (*.node files) among
// files, the production node_modules of a native build, listed one per line
// as `find` prints them.
func CheckAddonsPortable(service string, foreign []string, files string) error {
	if len(foreign) == 0 {
		return nil
	}
	var addons []string
	for _, f := range strings.Split(files, "\n") {
		if f = strings.TrimSpace(f); f != "" && path.Ext(f) == ".node" {
			addons = append(addons, f)
		}
	}
	return refuse(service, foreign, addons, "production dependencies hold native addons compiled for the engine's platform")
}

// refuse is the PortableError naming found, sorted, or nil when nothing was found.
func refuse(service string, foreign, found []string, reason string) error {
	if len(found) == 0 {
		return nil
	}
	slices.Sort(found)
	return &PortableError{Service: service, Platforms: foreign, Packages: found, Reason: reason}
}
