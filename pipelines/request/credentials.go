package request

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
)

// Source yields a secret or file content when the run needs it, so a door
// reads nothing (a Dagger secret, a file) for a request refused on its
// arguments.
type Source func(ctx context.Context) ([]byte, error)

// Bytes is a Source of content already in hand.
func Bytes(b []byte) Source {
	return func(context.Context) ([]byte, error) { return b, nil }
}

// FromRef is a Source for a secret named as Dagger names them: env:NAME or
// file:PATH. A bare value is refused: a secret given in clear on a command
// line lands in shell history and process listings.
func FromRef(ref string) (Source, error) {
	kind, what, _ := strings.Cut(ref, ":")
	switch {
	case kind == "env" && what != "":
		return func(context.Context) ([]byte, error) {
			v, ok := os.LookupEnv(what)
			if !ok {
				return nil, fmt.Errorf("environment variable %s is not set", what)
			}
			return []byte(v), nil
		}, nil
	case kind == "file" && what != "":
		return func(context.Context) ([]byte, error) { return os.ReadFile(what) }, nil
	}
	return nil, errors.New("a secret is given as env:NAME or file:PATH, never in clear")
}

// Credentials are one registry login: a user name and its password or
// token, both or neither; and the CAs trusted for it beyond the system's.
type Credentials struct {
	// Flag prefixes the flags in messages: "" for --username/--password,
	// "source-" for --source-username/--source-password.
	Flag     string
	Username string
	Password Source
	// CA is a PEM bundle of certificate authorities added to the system's
	// for this registry (--registry-ca); nil adds none.
	CA Source
}

// Access names the login in the messages of a registry that refuses it.
func (c Credentials) Access() registry.Access {
	return registry.Access{User: c.Username, Flags: c.Flag}
}

// Check refuses a user name without a password or the reverse.
func (c Credentials) Check() error {
	if (c.Username == "") != (c.Password == nil) {
		return fmt.Errorf("give both --%susername and --%spassword, or neither", c.Flag, c.Flag)
	}
	return nil
}

// Options are the go-containerregistry options of the login: basic auth, or
// the default keychain (docker's config, credential helpers) without one;
// with CA, a transport trusting it too (a CA that holds no certificate is
// refused here, before any request).
// The password is returned too, for the caller's redactor.
func (c Credentials) Options(ctx context.Context) ([]remote.Option, string, error) {
	if err := c.Check(); err != nil {
		return nil, "", err
	}
	var opts []remote.Option
	if c.CA != nil {
		pem, err := c.CA(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("--%s: %w", FlagRegistryCA, err)
		}
		trust, err := registry.Trust(pem)
		if err != nil {
			return nil, "", fmt.Errorf("--%s: %w", FlagRegistryCA, err)
		}
		opts = append(opts, trust)
	}
	if c.Password == nil {
		return append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain)), "", nil
	}
	pw, err := c.Password(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("--%spassword: %w", c.Flag, err)
	}
	// A file's final newline is not part of the token.
	secret := strings.TrimRight(string(pw), "\r\n")
	return append(opts, remote.WithAuth(&authn.Basic{Username: c.Username, Password: secret})), secret, nil
}
