package kube

import (
	"context"
	"errors"
	"fmt"

	retry "github.com/sethvargo/go-retry"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// ObjectRef names an object the way errors and reports do:
// Kind/namespace/name (namespace omitted for cluster-scoped objects).
func ObjectRef(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s/%s", u.GetKind(), ns, u.GetName())
	}
	return fmt.Sprintf("%s/%s", u.GetKind(), u.GetName())
}

// DryRunApply sends every object to the API server as a server-side apply
// with dryRun=All: the server runs defaulting, validation and admission as
// for a real create or patch (whichever the object needs) and persists
// nothing. Objects without a namespace get the client's. Every rejected
// object is named in the returned error, not just the first; transient
// failures are retried, each object within a fresh budget from newBudget.
func (c *Client) DryRunApply(ctx context.Context, objs []*unstructured.Unstructured, fieldManager string, newBudget func() retry.Backoff) error {
	var errs []error
	for _, in := range objs {
		obj := in.DeepCopy()
		gvk := obj.GroupVersionKind()
		mapping, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: kind %s is not served by the cluster: %w", ObjectRef(obj), gvk, err))
			continue
		}
		res := c.Dynamic.Resource(mapping.Resource)
		var ri interface {
			Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
		} = res
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(c.Namespace)
			}
			ri = res.Namespace(obj.GetNamespace())
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ObjectRef(obj), err))
			continue
		}
		force := true
		err = Retry(ctx, newBudget(), func(ctx context.Context) error {
			_, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
				DryRun: []string{metav1.DryRunAll}, FieldManager: fieldManager, Force: &force,
			})
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ObjectRef(obj), err))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("server-side dry run rejected %d of %d objects: %w", len(errs), len(objs), errors.Join(errs...))
	}
	return nil
}
