package registry_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
)

// countingBudget is a budget whose retries are counted: a refusal that is
// final never asks it for another attempt.
type countingBudget struct {
	next  retry.Backoff
	asked *int
}

func (c countingBudget) Next() (time.Duration, bool) {
	*c.asked++
	return c.next.Next()
}

// The real distribution registry, with TLS from its own CA and htpasswd:
// the right account and CA resolve a tag to its digest; a wrong password,
// no credentials or an untrusted CA are refused at once (the budget is
// never asked for a retry) with a message that says which and names the
// flag to change; the password is in no message.
func TestResolveOnARegistryThatChecksCredentialsAndCA(t *testing.T) {
	r := registrytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r.Ref(t, "krgeobuk/auth-server:1.0.0"), img, r.Options(ctx)...))
	want, err := img.Digest()
	require.NoError(t, err)
	ref := r.Host + "/krgeobuk/auth-server:1.0.0"

	trust, err := registry.Trust(r.CAPEM)
	require.NoError(t, err)
	right := remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password})
	wrong := remote.WithAuth(&authn.Basic{Username: r.Username, Password: "not-" + r.Password})
	for _, tc := range []struct {
		name    string
		opts    []remote.Option
		access  registry.Access
		reason  registry.AccessReason
		wantErr string
	}{
		{name: "the account and the CA resolve the tag", opts: []remote.Option{trust, right}, access: registry.Access{User: r.Username}},
		{name: "a wrong password", opts: []remote.Option{trust, wrong}, access: registry.Access{User: r.Username},
			reason:  registry.WrongCredentials,
			wantErr: "service auth-server: image " + ref + ": registry " + r.Host + ` refused the credentials of user "` + r.Username + `" (HTTP 401)`},
		{name: "no credentials", opts: []remote.Option{trust}, reason: registry.NoCredentials,
			wantErr: "registry " + r.Host + " requires credentials: give --username and --password"},
		{name: "no credentials for a promotion's source", opts: []remote.Option{trust}, access: registry.Access{Flags: "source-"},
			reason:  registry.NoCredentials,
			wantErr: "give --source-username and --source-password"},
		{name: "the registry's CA not given", opts: []remote.Option{right}, access: registry.Access{User: r.Username},
			reason:  registry.UnknownAuthority,
			wantErr: "registry " + r.Host + ": its TLS certificate is signed by an authority this pipeline does not trust; give the registry's CA with --registry-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			res := &registry.Resolver{Options: tc.opts, Access: tc.access, NewBudget: func() retry.Backoff {
				return countingBudget{next: retry.WithMaxRetries(5, retry.NewConstant(10*time.Millisecond)), asked: &asked}
			}}
			got, err := res.Resolve(ctx, "auth-server", ref)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, want.String(), got.Digest)
				require.Equal(t, "1.0.0", got.Tag)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			var ae *registry.AccessError
			require.True(t, errors.As(err, &ae), "%T %v", err, err)
			require.Equal(t, tc.reason, ae.Reason)
			require.Zero(t, asked, "refused at once, not retried through the budget")
			require.NotContains(t, err.Error(), r.Password)
		})
	}
}

func TestTrustAddsTheCAToTheSystemPool(t *testing.T) {
	r := registrytest.Start(t)
	keyPEM := []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
	for _, tc := range []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{name: "a CA", pem: r.CAPEM},
		{name: "a bundle: another CA, then the registry's", pem: append(append([]byte{}, otherCA(t)...), r.CAPEM...)},
		{name: "not PEM", pem: []byte("hello\n"), wantErr: "no PEM certificate in it"},
		{name: "empty", pem: nil, wantErr: "no PEM certificate in it"},
		{name: "a key instead of a certificate", pem: keyPEM, wantErr: "a EC PRIVATE KEY block: want only CERTIFICATE blocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := registry.Trust(tc.pem)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			_, err = remote.Head(r.Ref(t, "krgeobuk/none:1"), opt, remote.WithAuth(r.Auth()))
			require.ErrorContains(t, err, "404", "TLS verified and the registry answered: no such manifest")
		})
	}
}

// Trust adds to the system's CAs, it does not replace them: a child test
// process whose system trust is registry B's CA alone (SSL_CERT_FILE) and
// that is given registry A's CA reaches both.
func TestTrustKeepsTheSystemsCAs(t *testing.T) {
	if os.Getenv("KRGEOBUK_TRUST_CHILD") != "" {
		opt, err := registry.Trust([]byte(os.Getenv("KRGEOBUK_TRUST_CA")))
		require.NoError(t, err)
		for _, host := range []string{os.Getenv("KRGEOBUK_TRUST_A"), os.Getenv("KRGEOBUK_TRUST_B")} {
			ref, err := name.ParseReference(host + "/krgeobuk/none:1")
			require.NoError(t, err)
			_, err = remote.Head(ref, opt, remote.WithRetryPredicate(func(error) bool { return false }))
			require.ErrorContains(t, err, "401", "%s: TLS verified, the registry asks for credentials", host)
		}
		return
	}
	a, b := registrytest.Start(t), registrytest.Start(t)
	self, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		ca      []byte
		wantErr string
	}{
		{name: "A's CA given, B's in the system pool: both verify", ca: a.CAPEM},
		{name: "B's CA given, A's nowhere: A fails", ca: b.CAPEM, wantErr: "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(self, "-test.run", "^TestTrustKeepsTheSystemsCAs$", "-test.count=1")
			cmd.Env = append(os.Environ(), "KRGEOBUK_TRUST_CHILD=1", "SSL_CERT_FILE="+b.CAFile, "SSL_CERT_DIR="+t.TempDir(),
				"KRGEOBUK_TRUST_CA="+string(tc.ca), "KRGEOBUK_TRUST_A="+a.Host, "KRGEOBUK_TRUST_B="+b.Host)
			out, err := cmd.CombinedOutput()
			if tc.wantErr == "" {
				require.NoError(t, err, "%s", out)
				return
			}
			require.Error(t, err)
			require.Contains(t, string(out), tc.wantErr)
		})
	}
}

// otherCA is a CA that signed nothing here.
func otherCA(t *testing.T) []byte {
	t.Helper()
	s, err := registrytest.Write(t.TempDir(), registrytest.Settings{Addr: "127.0.0.1:1"})
	require.NoError(t, err)
	return s.CAPEM
}

// CheckLogin on the real registry: the account and CA pass (the manifest it
// reads need not exist), a wrong password, no credentials and an untrusted
// CA are each refused with their reason, and the password is in no message.
func TestCheckLoginOnARegistryThatChecksCredentialsAndCA(t *testing.T) {
	r := registrytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	trust, err := registry.Trust(r.CAPEM)
	require.NoError(t, err)
	right := remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password})
	wrong := remote.WithAuth(&authn.Basic{Username: r.Username, Password: "not-" + r.Password})
	for _, tc := range []struct {
		name   string
		opts   []remote.Option
		access registry.Access
		reason registry.AccessReason
	}{
		{name: "the account and the CA", opts: []remote.Option{trust, right}, access: registry.Access{User: r.Username}},
		{name: "a wrong password", opts: []remote.Option{trust, wrong}, access: registry.Access{User: r.Username}, reason: registry.WrongCredentials},
		{name: "no credentials", opts: []remote.Option{trust}, reason: registry.NoCredentials},
		{name: "no CA", opts: []remote.Option{right}, access: registry.Access{User: r.Username}, reason: registry.UnknownAuthority},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := registry.CheckLogin(ctx, r.Host+"/krgeobuk/auth-server", tc.access, tc.opts...)
			if tc.reason == "" {
				require.NoError(t, err)
				return
			}
			var ae *registry.AccessError
			require.True(t, errors.As(err, &ae), "%T %v", err, err)
			require.Equal(t, tc.reason, ae.Reason)
			require.Contains(t, err.Error(), "registry "+r.Host)
			require.NotContains(t, err.Error(), r.Password)
		})
	}
}
