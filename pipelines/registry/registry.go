// Package registry resolves the images a deploy will run to immutable
// digests in their OCI registries, before anything in the cluster changes.
// Transient registry failures are retried within a budget; an image that is
// not there, or a registry that refuses the pipeline's credentials or
// certificate trust (AccessError), is refused at once with the service and
// reference named.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	retry "github.com/sethvargo/go-retry"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
)

// Image is one service's image pinned by digest.
type Image struct {
	Service string `json:"service"`
	// Ref is the reference as it was given (tag or digest).
	Ref string `json:"ref"`
	// Repository is the fully qualified repository, e.g. ghcr.io/krgeobuk/auth-server.
	Repository string `json:"repository"`
	// Digest is the manifest digest the registry serves, "sha256:...".
	Digest string `json:"digest"`
	// Tag is the tag the reference named, empty for a reference by digest.
	Tag string `json:"tag,omitempty"`
}

// Pinned is the digest reference repository@digest.
func (i Image) Pinned() string { return i.Repository + "@" + i.Digest }

// NotFoundError says a registry answered that an image does not exist.
type NotFoundError struct {
	Service, Ref string
	Status       int
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("service %s: image %s not found in its registry (HTTP %d); was it published?", e.Service, e.Ref, e.Status)
}

// Resolver looks images up in their registries.
type Resolver struct {
	// Options configure authentication and transport for every request
	// (remote.WithAuth, remote.WithTransport, ...).
	Options []remote.Option
	// NewBudget returns a fresh retry budget per image; nil means
	// DefaultBudget.
	NewBudget func() retry.Backoff
	// Access names the login in the messages of a refused one.
	Access Access
}

// DefaultBudget is budget.Registry with the default registry budget.
func DefaultBudget() retry.Backoff { return budget.Registry(budget.Defaults().Registry) }

// Resolve confirms the image exists and returns its digest. A reference by
// digest must be served under exactly that digest; a reference by tag is
// pinned to the digest the tag points at now. Nothing is pulled: one HEAD
// (or GET where HEAD is unsupported) of the manifest per attempt.
func (r *Resolver) Resolve(ctx context.Context, service, ref string) (Image, error) {
	parsed, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return Image{}, fmt.Errorf("service %s: image reference %q is invalid: %w", service, ref, err)
	}
	budget := r.NewBudget
	if budget == nil {
		budget = DefaultBudget
	}
	// The retry lives here, with our budget; ggcr's own transport retry is
	// switched off so attempts are counted once.
	opts := append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithRetryPredicate(func(error) bool { return false }),
	}, r.Options...)
	var digest string
	attempts := 0
	err = retry.Do(ctx, budget(), func(ctx context.Context) error {
		attempts++
		desc, err := remote.Head(parsed, opts...)
		if err != nil {
			if err = r.Access.Explain(parsed.Context().RegistryStr(), err); IsAccess(err) {
				return err
			}
			if Transient(err) {
				return retry.RetryableError(err)
			}
			return err
		}
		digest = desc.Digest.String()
		return nil
	})
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && (te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode)) {
			return Image{}, &NotFoundError{Service: service, Ref: ref, Status: te.StatusCode}
		}
		if ctx.Err() != nil {
			return Image{}, fmt.Errorf("service %s: image %s: %w", service, ref, ctx.Err())
		}
		if IsAccess(err) {
			return Image{}, fmt.Errorf("service %s: image %s: %w", service, ref, err)
		}
		return Image{}, fmt.Errorf("service %s: image %s: registry did not answer after %d attempts: %w", service, ref, attempts, err)
	}
	if d, ok := parsed.(name.Digest); ok && d.DigestStr() != digest {
		return Image{}, fmt.Errorf("service %s: image %s: registry serves digest %s instead", service, ref, digest)
	}
	img := Image{Service: service, Ref: ref, Repository: parsed.Context().Name(), Digest: digest}
	if t, ok := parsed.(name.Tag); ok {
		img.Tag = t.TagStr()
	}
	return img, nil
}

// ResolveAll resolves every service's reference and returns them sorted by
// service name. All are tried; the error lists every failure.
func (r *Resolver) ResolveAll(ctx context.Context, refs map[string]string) ([]Image, error) {
	services := make([]string, 0, len(refs))
	for s := range refs {
		services = append(services, s)
	}
	sort.Strings(services)
	var out []Image
	var errs []error
	for _, s := range services {
		img, err := r.Resolve(ctx, s, refs[s])
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out = append(out, img)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// Transient reports whether a registry failure may pass: rate limiting,
// server errors and dropped connections. 4xx answers other than 408/429 are
// final.
func Transient(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusRequestTimeout || te.StatusCode == http.StatusTooManyRequests ||
			te.StatusCode >= 500 || te.Temporary()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}
