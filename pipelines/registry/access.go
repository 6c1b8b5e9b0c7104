package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Access is what the pipeline presents to a registry, so that a refusal
// can say what to change.
type Access struct {
	// User is the user name given with the credentials flags; "" when none
	// were (docker's config and credential helpers are tried then).
	User string
	// Flags prefixes the credentials flags in messages: "" for
	// --username/--password, "source-" for the promotion's source.
	Flags string
}

// AccessError says a registry refused the pipeline: wrong or missing
// credentials, or a TLS certificate signed by an authority the pipeline
// does not trust. It is final: another attempt would get the same answer.
type AccessError struct {
	// Registry is the registry's host as the image reference names it.
	Registry string
	Reason   AccessReason
	Access   Access
	// Status is the HTTP status of a refused login (401); 0 for TLS.
	Status int
	Err    error
}

// AccessReason names why a registry refused access.
type AccessReason string

const (
	// WrongCredentials: credentials were given and the registry refused them.
	WrongCredentials AccessReason = "wrong-credentials"
	// NoCredentials: the registry asks for a login and none was given.
	NoCredentials AccessReason = "no-credentials"
	// UnknownAuthority: the registry's certificate chains to a CA that is
	// neither the system's nor one given with --registry-ca.
	UnknownAuthority AccessReason = "unknown-authority"
)

// FlagCA is the flag that adds a registry's CA; it is named here, where
// the messages are written, and in pipelines/request.
const FlagCA = "registry-ca"

func (e *AccessError) Error() string {
	switch e.Reason {
	case WrongCredentials:
		return fmt.Sprintf("registry %s refused the credentials of user %q (HTTP %d)", e.Registry, e.Access.User, e.Status)
	case NoCredentials:
		return fmt.Sprintf("registry %s requires credentials: give --%susername and --%spassword (HTTP %d)",
			e.Registry, e.Access.Flags, e.Access.Flags, e.Status)
	default:
		return fmt.Sprintf("registry %s: its TLS certificate is signed by an authority this pipeline does not trust; give the registry's CA with --%s",
			e.Registry, FlagCA)
	}
}

func (e *AccessError) Unwrap() error { return e.Err }

// Explain turns a registry's refusal of access into an *AccessError naming
// the registry, the user and the flag to change; any other error is
// returned as it is. The user's password is in no message.
func (a Access) Explain(registry string, err error) error {
	if err == nil {
		return nil
	}
	var ae *AccessError
	if errors.As(err, &ae) {
		return err
	}
	// Checked before HTTP statuses: go-containerregistry also tries plain
	// HTTP on loopback and private addresses, and a TLS server's 400 to it
	// is beside the point.
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return &AccessError{Registry: registry, Reason: UnknownAuthority, Access: a, Err: err}
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
		reason := NoCredentials
		if a.User != "" {
			reason = WrongCredentials
		}
		return &AccessError{Registry: registry, Reason: reason, Access: a, Status: te.StatusCode, Err: err}
	}
	return err
}

// IsAccess says whether err is (or wraps) an *AccessError.
func IsAccess(err error) bool {
	var ae *AccessError
	return errors.As(err, &ae)
}

// Trust is a go-containerregistry transport that trusts the system's CAs
// and every certificate of caPEM besides (a PEM bundle, one or more
// CERTIFICATE blocks). caPEM without a certificate is refused, so a wrong
// file is caught before any request.
func Trust(caPEM []byte) (remote.Option, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for rest := caPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %s block: want only CERTIFICATE blocks (a CA bundle, no keys)", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate in it (want the registry's CA as -----BEGIN CERTIFICATE-----)")
	}
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return remote.WithTransport(t), nil
}

// CheckLogin asks the registry of repository (host/path) whether it
// accepts the login in opts, with one authenticated read of a manifest
// that need not exist: a publish checks this before anything is built, so
// a wrong password or an untrusted certificate costs seconds, not a build.
// A missing manifest is fine; a refusal is an *AccessError.
func CheckLogin(ctx context.Context, repository string, access Access, opts ...remote.Option) error {
	repo, err := name.NewRepository(repository, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("registry %q: %w", repository, err)
	}
	_, err = remote.Head(repo.Tag("krgeobuk-login-check"), append(opts, remote.WithContext(ctx))...)
	var te *transport.Error
	if err == nil || (errors.As(err, &te) && te.StatusCode == http.StatusNotFound) {
		return nil
	}
	if err = access.Explain(repo.RegistryStr(), err); IsAccess(err) {
		return err
	}
	return fmt.Errorf("registry %s: %w", repo.RegistryStr(), err)
}
