package release

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	helmrelease "helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

// MarkVerified records on revision rev's release Secret that every gate
// passed for it at the given time. Transient API failures are retried; the
// mark is a label, so `kubectl get secret -l` finds verified revisions too.
func (c *Client) MarkVerified(ctx context.Context, rev int, at time.Time) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{
		LabelVerified:   strconv.Itoa(rev),
		LabelVerifiedAt: strconv.FormatInt(at.Unix(), 10),
	}}})
	if err != nil {
		return err
	}
	err = kube.Retry(ctx, kube.Budget(c.Budgets.APIWrite), func(ctx context.Context) error {
		_, err := c.kc.Typed.CoreV1().Secrets(c.Namespace).Patch(ctx, c.secretName(rev), types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("release %s: mark revision %d verified: %w", c.Name, rev, err)
	}
	return nil
}

// MarkFailed records that revision rev failed its gates: Helm status failed
// with the reason as its description, as Helm's own --atomic does, so
// `helm history` tells the same story as our reports.
func (c *Client) MarkFailed(ctx context.Context, rev int, reason string) error {
	err := kube.Retry(ctx, kube.Budget(c.Budgets.APIWrite), func(context.Context) error {
		rel, err := c.cfg.Releases.Get(c.Name, rev)
		if err != nil {
			return err
		}
		rel.Info.Status = helmrelease.StatusFailed
		rel.Info.Description = truncate(reason, 512)
		return c.cfg.Releases.Update(rel)
	})
	if err != nil {
		return fmt.Errorf("release %s: mark revision %d failed: %w", c.Name, rev, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// attribute records on rel's release Secret that actor by made it, for this
// very revision (see LabelDeployedRevision), and updates rel's labels to
// match. Used where Helm wrote the record without our labels (its rollback
// copies the previous revision's) or under another number than expected.
func (c *Client) attribute(ctx context.Context, rel *helmrelease.Release, by string) error {
	labels := map[string]string{LabelDeployedBy: by, LabelDeployedRevision: strconv.Itoa(rel.Version)}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return err
	}
	err = kube.Retry(ctx, kube.Budget(c.Budgets.APIWrite), func(ctx context.Context) error {
		_, err := c.kc.Typed.CoreV1().Secrets(c.Namespace).Patch(ctx, c.secretName(rel.Version), types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("release %s: record who made revision %d: %w", c.Name, rel.Version, err)
	}
	if rel.Labels == nil {
		rel.Labels = map[string]string{}
	}
	for k, v := range labels {
		rel.Labels[k] = v
	}
	return nil
}
