package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
)

// Revision is one entry of a release's history, as reports show it. It
// carries no values: release values may hold secret literals.
type Revision struct {
	Number      int       `json:"revision"`
	Status      string    `json:"status"`
	Chart       string    `json:"chart"`
	AppVersion  string    `json:"appVersion,omitempty"`
	Updated     time.Time `json:"updated"`
	Description string    `json:"description,omitempty"`
	// Verified is true when every gate passed for this very revision.
	Verified   bool      `json:"verified"`
	VerifiedAt time.Time `json:"verifiedAt,omitzero"`
	// DeployedBy is who applied the revision through this pipeline; empty
	// when Outside.
	DeployedBy string `json:"deployedBy,omitempty"`
	// Outside is true when the revision was not made by this pipeline: the
	// helm CLI (upgrade, rollback, --atomic) or anything else that writes
	// Helm's records, including revisions from before attribution was
	// recorded per revision. Helm copies the previous revision's labels onto
	// such revisions, so a deployed-by label that was not written for this
	// very revision says nothing about who made it.
	Outside bool `json:"outside,omitempty"`
	// Images maps each component (service) to the image it runs,
	// repository@digest (or repository:tag when no digest was pinned).
	Images map[string]string `json:"images,omitempty"`

	rel *helmrelease.Release
}

// Pending reports whether Helm left the revision mid-operation.
func (r Revision) Pending() bool { return r.rel != nil && r.rel.Info.Status.IsPending() }

// Workload is a Deployment or StatefulSet of a revision's manifest.
type Workload struct {
	// Kind is "Deployment" or "StatefulSet".
	Kind string
	Name string
	// Component is what the workload runs: its app.kubernetes.io/name label
	// (both charts set it: the service, or prometheus, alertmanager,
	// grafana), else its name.
	Component string
}

// Workloads lists the Deployments and StatefulSets in the revision's
// manifest (hooks excluded), in manifest order.
func (r Revision) Workloads() ([]Workload, error) {
	if r.rel == nil {
		return nil, nil
	}
	objs, err := render.Decode(r.rel.Manifest)
	if err != nil {
		return nil, fmt.Errorf("revision %d manifest: %w", r.Number, err)
	}
	var out []Workload
	for _, o := range objs {
		kind := o.U.GetKind()
		if (kind != "Deployment" && kind != "StatefulSet") || o.U.GetAPIVersion() != "apps/v1" {
			continue
		}
		w := Workload{Kind: kind, Name: o.U.GetName(), Component: o.U.GetLabels()["app.kubernetes.io/name"]}
		if w.Component == "" {
			w.Component = w.Name
		}
		out = append(out, w)
	}
	return out, nil
}

// SameAs reports whether applying ch with values would reproduce this
// revision exactly: the same chart content and the same user values.
func (r Revision) SameAs(ch *chart.Chart, values map[string]any) (bool, error) {
	if r.rel == nil || r.rel.Chart == nil {
		return false, nil
	}
	a, err := Fingerprint(r.rel.Chart, r.rel.Config)
	if err != nil {
		return false, err
	}
	b, err := Fingerprint(ch, values)
	if err != nil {
		return false, err
	}
	return a == b, nil
}

// Fingerprint hashes a chart's content (metadata, templates, default values,
// schema, files, subcharts) together with user values. Equal fingerprints
// render equal releases.
func Fingerprint(ch *chart.Chart, values map[string]any) (string, error) {
	h := sha256.New()
	var walk func(*chart.Chart) error
	walk = func(c *chart.Chart) error {
		doc := struct {
			Meta      *chart.Metadata `json:"m"`
			Templates []*chart.File   `json:"t"`
			Values    map[string]any  `json:"v"`
			Schema    []byte          `json:"s"`
			Files     []*chart.File   `json:"f"`
		}{c.Metadata, sortedFiles(c.Templates), c.Values, c.Schema, sortedFiles(c.Files)}
		b, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		h.Write(b)
		deps := append([]*chart.Chart(nil), c.Dependencies()...)
		sort.Slice(deps, func(i, j int) bool { return deps[i].Name() < deps[j].Name() })
		for _, d := range deps {
			if err := walk(d); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(ch); err != nil {
		return "", fmt.Errorf("fingerprint chart %s: %w", ch.Name(), err)
	}
	b, err := json.Marshal(values)
	if err != nil {
		return "", fmt.Errorf("fingerprint values: %w", err)
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortedFiles(in []*chart.File) []*chart.File {
	out := append([]*chart.File(nil), in...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// toRevision reads a Helm release record; images are read back with the
// client's Layout.
func (c *Client) toRevision(rel *helmrelease.Release) Revision {
	r := Revision{Number: rel.Version, rel: rel}
	if rel.Info != nil {
		r.Status = rel.Info.Status.String()
		r.Updated = rel.Info.LastDeployed.Time
		r.Description = rel.Info.Description
	}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		r.Chart = rel.Chart.Metadata.Name + "-" + rel.Chart.Metadata.Version
		r.AppVersion = rel.Chart.Metadata.AppVersion
	}
	r.Verified = rel.Labels[LabelVerified] == strconv.Itoa(rel.Version)
	if r.Verified {
		if sec, err := strconv.ParseInt(rel.Labels[LabelVerifiedAt], 10, 64); err == nil {
			r.VerifiedAt = time.Unix(sec, 0).UTC()
		}
	}
	if by := rel.Labels[LabelDeployedBy]; by != "" && rel.Labels[LabelDeployedRevision] == strconv.Itoa(rel.Version) {
		r.DeployedBy = by
	} else {
		r.Outside = true
	}
	r.Images = c.Layout.Images(rel.Config)
	return r
}

// History returns every stored revision, oldest first; an empty slice when
// the release does not exist. Transient API failures are retried.
func (c *Client) History(ctx context.Context) ([]Revision, error) {
	var rels []*helmrelease.Release
	err := kube.Retry(ctx, kube.Budget(c.Budgets.APIRead), func(context.Context) error {
		var err error
		rels, err = c.cfg.Releases.History(c.Name)
		if isNotFound(err) {
			rels, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("release %s: history: %w", c.Name, err)
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].Version < rels[j].Version })
	out := make([]Revision, len(rels))
	for i, r := range rels {
		out[i] = c.toRevision(r)
	}
	return out, nil
}

// Last returns the newest revision, or ErrNoRelease.
func (c *Client) Last(ctx context.Context) (Revision, error) {
	h, err := c.History(ctx)
	if err != nil {
		return Revision{}, err
	}
	if len(h) == 0 {
		return Revision{}, fmt.Errorf("release %s: %w", c.Name, ErrNoRelease)
	}
	return h[len(h)-1], nil
}

// Objects decodes the revision's manifest (hooks excluded): what Helm
// applied for it.
func (r Revision) Objects() ([]render.Object, error) {
	if r.rel == nil {
		return nil, nil
	}
	objs, err := render.Decode(r.rel.Manifest)
	if err != nil {
		return nil, fmt.Errorf("revision %d manifest: %w", r.Number, err)
	}
	return objs, nil
}
