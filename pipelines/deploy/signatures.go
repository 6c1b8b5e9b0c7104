package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	retry "github.com/sethvargo/go-retry"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
)

// preflightSignatures refuses, in an environment whose signing: block
// requires it, any image without a signature that verifies with an
// accepted key over exactly its digest, or without its SBOM
// (attest.Verifier). It runs once the digests are resolved, so what is
// verified is what will run. The monitoring stack runs the upstream images
// its chart names, which this pipeline does not sign: it is not checked.
func (d *Deployer) preflightSignatures(ctx context.Context, r *run, images []registry.Image) error {
	sg := d.env.Signing
	if sg == nil || !sg.Required || d.stack.ChartImages {
		return nil
	}
	return r.step("preflight/signatures", func() (string, error) {
		keys, err := attest.Keys(sg)
		if err != nil {
			return "", fmt.Errorf("environment %s: %w", d.env.Name, err)
		}
		v := &attest.Verifier{Keys: keys, Options: d.resolver.Options,
			NewBudget: func() retry.Backoff { return budget.Registry(d.budgets.Registry) }}
		refs := map[string]string{}
		for _, img := range images {
			refs[img.Service] = img.Pinned()
		}
		got, err := v.VerifyAll(ctx, refs)
		if err != nil {
			return "", fmt.Errorf("images not signed as environment %s requires:\n%w", d.env.Name, err)
		}
		byKey := map[string]int{}
		for _, g := range got {
			byKey[g.Key]++
		}
		var keysUsed []string
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			keysUsed = append(keysUsed, fmt.Sprintf("%d with %s", byKey[k], k))
		}
		return fmt.Sprintf("%d images signed for their digests (%s), each with its SBOM", len(got), strings.Join(keysUsed, ", ")), nil
	})
}
