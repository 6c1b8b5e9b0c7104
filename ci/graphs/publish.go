package graphs

import (
	"context"
	"fmt"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// RegistryAuth are the credentials for a push; the password only ever
// travels as a Dagger secret.
type RegistryAuth struct {
	Username string
	Password *dagger.Secret
}

// Publish pushes one service's image (several platform variants become one
// multi-platform index) to t.Address and returns repository@digest.
func Publish(ctx context.Context, t build.Target, variants []*dagger.Container, auth *RegistryAuth) (string, error) {
	if len(variants) == 0 {
		return "", fmt.Errorf("publish %s: nothing to publish", t.Service)
	}
	first := variants[0]
	if auth != nil {
		if auth.Username == "" || auth.Password == nil {
			return "", fmt.Errorf("publish %s: registry credentials need both a username and a password secret", t.Service)
		}
		host, err := t.Registry()
		if err != nil {
			return "", err
		}
		first = first.WithRegistryAuth(host, auth.Username, auth.Password)
	}
	published, err := first.Publish(ctx, t.Address, dagger.ContainerPublishOpts{PlatformVariants: variants[1:]})
	if err != nil {
		return "", fmt.Errorf("publish %s to %s: %w", t.Service, t.Address, err)
	}
	return t.Pinned(published)
}
