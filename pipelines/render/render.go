// Package render turns a Helm chart and values into the exact manifests a
// release would apply, decoded into typed Kubernetes objects. It never talks
// to a cluster: preflight checks, policies and tests all start from here.
package render

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/ignore"
	"helm.sh/helm/v3/pkg/releaseutil"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// LoadFS loads the chart rooted at dir inside fsys, honouring .helmignore the
// way `helm package` does, so an embedded chart renders like one on disk.
func LoadFS(fsys fs.FS, dir string) (*chart.Chart, error) {
	rules := ignore.Empty()
	if data, err := fs.ReadFile(fsys, path.Join(dir, ignore.HelmIgnore)); err == nil {
		r, err := ignore.Parse(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("chart %s: %s: %w", dir, ignore.HelmIgnore, err)
		}
		rules = r
	}
	rules.AddDefaults()

	var files []*loader.BufferedFile
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if rel == "" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if rules.Ignore(rel, info) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: rel, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", dir, err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", dir, err)
	}
	return ch, nil
}

// Request says what to render.
type Request struct {
	Chart     *chart.Chart
	Release   string
	Namespace string
	// Values are merged over the chart's defaults and validated against its
	// values.schema.json, exactly as an install would.
	Values map[string]any
	// IsUpgrade renders as `helm upgrade` would (.Release.IsUpgrade).
	IsUpgrade bool
}

// Result is a rendered release.
type Result struct {
	// Manifest is the YAML stream Helm would apply, hooks excluded.
	Manifest string
	// Objects are the manifest's documents, in Helm's install order.
	Objects []Object
	// Notes is the rendered NOTES.txt.
	Notes string
}

// Render renders req without a cluster. Schema violations and template
// failures come back as errors naming the chart.
func Render(ctx context.Context, req Request) (*Result, error) {
	if req.Chart == nil {
		return nil, fmt.Errorf("render: no chart given")
	}
	name := req.Chart.Name()
	inst := action.NewInstall(&action.Configuration{})
	inst.ClientOnly = true
	inst.DryRun = true
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.ReleaseName = req.Release
	inst.Namespace = req.Namespace
	inst.IsUpgrade = req.IsUpgrade
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.0", Major: "1", Minor: "37"}
	rel, err := inst.RunWithContext(ctx, req.Chart, values.Merge(req.Values, nil))
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", name, err)
	}
	objs, err := Decode(rel.Manifest)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", name, err)
	}
	return &Result{Manifest: rel.Manifest, Objects: objs, Notes: rel.Info.Notes}, nil
}

// Lint runs Helm's linter on the chart directory with the given values and
// fails on warnings as well as errors (`helm lint --strict`).
func Lint(chartDir, namespace string, vals map[string]any) error {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = namespace
	res := l.Run([]string{chartDir}, values.Merge(vals, nil))
	if len(res.Errors) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(res.Errors))
	for _, e := range res.Errors {
		msgs = append(msgs, e.Error())
	}
	sort.Strings(msgs)
	return fmt.Errorf("helm lint --strict %s: %s", chartDir, strings.Join(msgs, "; "))
}

// SplitManifest splits a YAML stream into its non-empty documents, keeping
// Helm's "# Source:" comments so errors can name the template.
func SplitManifest(manifest string) []string {
	docs := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	// SplitManifests keys are "manifest-N"; sort numerically to keep order.
	sort.Slice(keys, func(i, j int) bool { return manifestIndex(keys[i]) < manifestIndex(keys[j]) })
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if strings.TrimSpace(stripComments(docs[k])) != "" {
			out = append(out, docs[k])
		}
	}
	return out
}

func manifestIndex(key string) int {
	var n int
	_, _ = fmt.Sscanf(key, "manifest-%d", &n)
	return n
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
