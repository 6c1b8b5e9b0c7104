// Package promote copies images that were verified in one environment to the
// repositories another environment deploys from, by digest, with
// go-containerregistry: no rebuild, so what runs next is byte for byte what
// passed the gates before. Every reference is checked before anything is
// copied, and every copy is verified by reading the digest back.
package promote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	retry "github.com/sethvargo/go-retry"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// Copy is one image to promote.
type Copy struct {
	Service string `json:"service"`
	// From is the verified image, repository@sha256:...
	From string `json:"from"`
	// To is the destination, repository@sha256:... with the same digest.
	To string `json:"to"`
}

// Plan pairs each verified image (service -> repository@digest) with its
// destination repository (service -> repository). It refuses, before any
// copy, an unknown service, a reference that is not pinned by digest, and a
// service without a destination. The result is in deploy order.
func Plan(verified, destinations map[string]string) ([]Copy, error) {
	if len(verified) == 0 {
		return nil, errors.New("promote: no verified images given")
	}
	var errs []error
	var out []Copy
	for _, svc := range slices.Sorted(maps.Keys(verified)) {
		if _, err := catalog.Lookup(svc); err != nil {
			errs = append(errs, err)
			continue
		}
		from, err := name.NewDigest(verified[svc])
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %q is not pinned by digest (repository@sha256:...): %w", svc, verified[svc], err))
			continue
		}
		dest, ok := destinations[svc]
		if !ok {
			errs = append(errs, fmt.Errorf("service %s: no destination repository", svc))
			continue
		}
		repo, err := name.NewRepository(dest)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: destination %q: %w", svc, dest, err))
			continue
		}
		out = append(out, Copy{Service: svc, From: from.Name(), To: repo.Name() + "@" + from.DigestStr()})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	order := map[string]int{}
	for i, n := range catalog.Names() {
		order[n] = i
	}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Service] < order[out[j].Service] })
	return out, nil
}

// Destinations returns, for environment env, the repository each service
// deploys from: chart ch's default overlaid with the environment's values.
// A non-empty registry (host and path, e.g. 127.0.0.1:5000/krgeobuk)
// replaces them all with registry/<service>.
func Destinations(ch *chart.Chart, env *environment.Environment, registry string) (map[string]string, error) {
	out := map[string]string{}
	if registry != "" {
		registry = strings.TrimSuffix(registry, "/")
		for _, s := range catalog.Names() {
			repo, err := name.NewRepository(registry+"/"+s, name.StrictValidation)
			if err != nil {
				return nil, fmt.Errorf("promote: registry %q: %w", registry, err)
			}
			out[s] = repo.Name()
		}
		return out, nil
	}
	out, err := values.Repositories(ch, env.Values)
	if err != nil {
		return nil, fmt.Errorf("promote: environment %s: %w", env.Name, err)
	}
	return out, nil
}

// Result says what happened to one image.
type Result struct {
	Copy
	// Copied is false when the destination already held the digest.
	Copied bool `json:"copied"`
	// Referrers counts the signatures and SBOMs copied with it.
	Referrers int `json:"referrers"`
}

// Options configure the registries' clients.
type Options struct {
	// Source and Dest are passed to every request (remote.WithAuth,
	// remote.WithTransport, ...).
	Source, Dest []remote.Option
	// SourceAccess and DestAccess name each side's login in the messages
	// of a refused one.
	SourceAccess, DestAccess registry.Access
	// NewBudget returns a fresh retry budget per image; nil means
	// DefaultBudget.
	NewBudget func() retry.Backoff
}

// DefaultBudget retries a transient registry failure within the default
// copy budget (budget.Defaults().Copy).
func DefaultBudget() retry.Backoff { return budget.Registry(budget.Defaults().Copy) }

// Run copies each image (single manifests and multi-platform indexes alike)
// and reads the digest back from the destination, then copies its
// signatures and SBOMs (attest.Copy: same bytes, same subject digest), even
// when the destination already held the image. It stops at the first
// failure: the images before it are promoted, the rest untouched, and the
// error names the service.
func Run(ctx context.Context, copies []Copy, opts Options) ([]Result, error) {
	budget := opts.NewBudget
	if budget == nil {
		budget = DefaultBudget
	}
	var out []Result
	for _, c := range copies {
		copied, err := one(ctx, c, opts, budget())
		if err != nil {
			return out, fmt.Errorf("promote %s: %w", c.Service, err)
		}
		var n int
		err = retry.Do(ctx, budget(), func(ctx context.Context) error {
			var err error
			n, err = attest.Copy(ctx, c.From, c.To, opts.Source, opts.Dest)
			return retryable(err)
		})
		if err != nil {
			return out, fmt.Errorf("promote %s: %w", c.Service, err)
		}
		out = append(out, Result{Copy: c, Copied: copied, Referrers: n})
	}
	return out, nil
}

func one(ctx context.Context, c Copy, opts Options, budget retry.Backoff) (bool, error) {
	from, err := name.NewDigest(c.From)
	if err != nil {
		return false, err
	}
	to, err := name.NewDigest(c.To)
	if err != nil {
		return false, err
	}
	if from.DigestStr() != to.DigestStr() {
		return false, fmt.Errorf("%s and %s differ in digest; promotion never changes an image", c.From, c.To)
	}
	src := append([]remote.Option{remote.WithContext(ctx)}, opts.Source...)
	dst := append([]remote.Option{remote.WithContext(ctx)}, opts.Dest...)
	// Each side's refusal names its own registry and flags.
	srcErr := func(err error) error { return opts.SourceAccess.Explain(from.Context().RegistryStr(), err) }
	dstErr := func(err error) error { return opts.DestAccess.Explain(to.Context().RegistryStr(), err) }

	present := false
	err = retry.Do(ctx, budget, func(ctx context.Context) error {
		d, err := remote.Head(to, dst...)
		switch {
		case err == nil:
			present = d.Digest.String() == to.DigestStr()
			return nil
		case statusIs(err, http.StatusNotFound):
			return nil
		}
		return retryable(dstErr(err))
	})
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", c.To, err)
	}
	if present {
		return false, nil
	}

	err = retry.Do(ctx, budget, func(ctx context.Context) error {
		desc, err := remote.Get(from, src...)
		if err != nil {
			return retryable(srcErr(err))
		}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				return err
			}
			return retryable(dstErr(remote.WriteIndex(to, idx, dst...)))
		}
		img, err := desc.Image()
		if err != nil {
			return err
		}
		return retryable(dstErr(remote.Write(to, img, dst...)))
	})
	if err != nil {
		return false, fmt.Errorf("copy %s to %s: %w", c.From, c.To, err)
	}

	err = retry.Do(ctx, budget, func(ctx context.Context) error {
		d, err := remote.Head(to, dst...)
		if err != nil {
			return retryable(dstErr(err))
		}
		if d.Digest.String() != to.DigestStr() {
			return fmt.Errorf("destination answers digest %s", d.Digest)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("verify %s: %w", c.To, err)
	}
	return true, nil
}

// CheckSigned refuses, when the destination environment requires
// signatures, every image that does not verify at the source with a key
// the destination accepts (attest.Verifier.VerifyAll, as the deploy's
// preflight): what is promoted would be refused there anyway, and nothing
// is copied.
func CheckSigned(ctx context.Context, copies []Copy, to *environment.Environment, opts Options) error {
	if to.Signing == nil || !to.Signing.Required {
		return nil
	}
	keys, err := attest.Keys(to.Signing)
	if err != nil {
		return fmt.Errorf("promote: environment %s: %w", to.Name, err)
	}
	v := &attest.Verifier{Keys: keys, Options: opts.Source, NewBudget: opts.NewBudget}
	refs := map[string]string{}
	for _, c := range copies {
		refs[c.Service] = c.From
	}
	if _, err := v.VerifyAll(ctx, refs); err != nil {
		return fmt.Errorf("promote: environment %s requires signed images; at the source:\n%w", to.Name, err)
	}
	return nil
}

func statusIs(err error, code int) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == code
}

// retryable marks server-side and network failures for another attempt; a
// registry's 4xx answer (not found, unauthorized, denied) and a refused
// login or certificate are final.
func retryable(err error) error {
	if err == nil || registry.IsAccess(err) {
		return err
	}
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode < 500 && terr.StatusCode != http.StatusTooManyRequests {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return retry.RetryableError(err)
}
