package attest

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/sbom"
)

// LockfileName is the file an SBOM is made from, at a service source's root.
const LockfileName = "package-lock.json"

// CheckPublish refuses, before anything is built, a publish for an
// environment that requires signatures without a signing key: its images
// would be refused at deploy.
func CheckPublish(env *environment.Environment, haveKey bool) error {
	if env.Signing != nil && env.Signing.Required && !haveKey {
		return fmt.Errorf("environment %s requires signed images: give --signing-key (a PEM private key as a secret, e.g. env:COSIGN_KEY)", env.Name)
	}
	return nil
}

// Published attaches to one published image (repository@digest, an image
// or a multi-platform index) its SBOM, made from the service's lockfile
// (nil: the source had none), and its signature. opts carry the registry
// credentials the push used.
func Published(ctx context.Context, service, image string, lockfile []byte, signer *Signer, opts ...remote.Option) (Attached, error) {
	if lockfile == nil {
		return Attached{}, fmt.Errorf("service %s: its source has no %s at its root: the SBOM lists the npm packages it installs from it", service, LockfileName)
	}
	ref, err := name.NewDigest(image)
	if err != nil {
		return Attached{}, fmt.Errorf("service %s: %q is not pinned by digest: %w", service, image, err)
	}
	if signer == nil {
		return Attached{}, errors.New("service " + service + ": no signing key")
	}
	bom, err := sbom.FromLockfile(lockfile, sbom.Subject{Repository: ref.Context().Name(), Digest: ref.DigestStr()})
	if err != nil {
		return Attached{}, fmt.Errorf("service %s: %w", service, err)
	}
	data, err := sbom.Encode(bom)
	if err != nil {
		return Attached{}, fmt.Errorf("service %s: %w", service, err)
	}
	out, err := Attach(ctx, image, signer, data, opts...)
	if err != nil {
		return out, fmt.Errorf("service %s: %w", service, err)
	}
	return out, nil
}
