package moduletest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// secureRegistry is the authenticating registry `engine up` runs in the engine's network (the
// CNCF distribution registry over TLS from a throwaway CA, htpasswd), as its
// secure-registry.json ($KRGEOBUK_E2E_REGISTRY) describes it.
type secureRegistry struct {
	registrytest.Login
	password string
	caPEM    []byte
}

func loadSecureRegistry(t *testing.T) secureRegistry {
	t.Helper()
	path := os.Getenv("KRGEOBUK_E2E_REGISTRY")
	require.NotEmpty(t, path, "KRGEOBUK_E2E_REGISTRY names the authenticating registry's JSON: run through `make e2e`")
	login, err := registrytest.ReadLogin(path)
	require.NoError(t, err)
	r := secureRegistry{Login: login}
	pw, err := os.ReadFile(r.PasswordFile)
	require.NoError(t, err)
	r.password = string(pw)
	r.caPEM, err = os.ReadFile(r.CAFile)
	require.NoError(t, err)
	return r
}

// options are this process's login to the registry: its account and its CA.
func (r secureRegistry) options(t *testing.T) []remote.Option {
	t.Helper()
	trust, err := registry.Trust(r.caPEM)
	require.NoError(t, err)
	return []remote.Option{trust, remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.password})}
}

// login is the module's flags for the registry's account and CA (the password as a secret file).
func (r secureRegistry) login() []string {
	return []string{"--username", r.Username, "--password", "file:" + r.PasswordFile, "--registry-ca", r.CAFile}
}

// signingKey is a key pair the test makes: the private half in a 0600 file for --signing-key,
// the public half in a file for --signed-by, and a verifier that accepts it alone.
type signingKey struct {
	private, public string
	pem             []byte
	verifier        func(opts []remote.Option) *attest.Verifier
}

func newSigningKey(t *testing.T) signingKey {
	t.Helper()
	k, err := deploytest.NewKey("cosign.pub")
	require.NoError(t, err)
	dir := t.TempDir()
	out := signingKey{private: filepath.Join(dir, "cosign.key"), public: filepath.Join(dir, "cosign.pub"), pem: k.Public.PEM}
	require.NoError(t, os.WriteFile(out.private, k.PrivatePEM, 0o600))
	require.NoError(t, os.WriteFile(out.public, k.Public.PEM, 0o644))
	accepted, err := attest.ParseKey(k.Public.File, k.Public.PEM)
	require.NoError(t, err)
	out.verifier = func(opts []remote.Option) *attest.Verifier {
		return &attest.Verifier{Keys: []attest.Key{accepted}, Options: opts}
	}
	return out
}

// teamCheckout is the repository as a team has it once its public key is committed as staging's
// accepted key (k8s/environments/staging/cosign.pub): a copy, so the work tree is never touched.
func teamCheckout(t *testing.T, root string, key signingKey) string {
	t.Helper()
	dir := copyTree(t, root)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "k8s", "environments", "staging", "cosign.pub"), key.pem, 0o644))
	return dir
}

// requireSigned checks, as deploy's preflight would, that every image carries a signature by
// key over its own digest and an SBOM.
func requireSigned(ctx context.Context, t *testing.T, key signingKey, opts []remote.Option, images map[string]string) {
	t.Helper()
	v := key.verifier(opts)
	for svc, ref := range images {
		got, err := v.Verify(ctx, ref)
		require.NoError(t, err, "%s: %s is signed with the test key and has its SBOM", svc, ref)
		require.NotEmpty(t, got.SBOM, svc)
	}
}

// requireNoSecret fails if out shows the registry's password or the signing key.
func requireNoSecret(t *testing.T, out string, reg secureRegistry, key signingKey) {
	t.Helper()
	require.NotContains(t, out, reg.password, "no registry password in the output")
	priv, err := os.ReadFile(key.private)
	require.NoError(t, err)
	for _, line := range strings.Split(string(priv), "\n") {
		if len(line) > 16 && !strings.HasPrefix(line, "-----") {
			require.NotContains(t, out, line, "no signing key in the output")
		}
	}
}

// testRegistryRefusals: publish through the real engine to the registry that checks credentials
// and TLS, with a wrong password and without its CA: each is refused before anything is built,
// saying which, and neither the password nor the signing key shows.
func testRegistryRefusals(ctx context.Context, t *testing.T, m caller, reg secureRegistry, key signingKey) {
	wrong := filepath.Join(t.TempDir(), "wrong-password")
	require.NoError(t, os.WriteFile(wrong, []byte("not-"+reg.password), 0o600))
	base := []string{"--registry", reg.Host + "/refused", "--tag", "refused", "--env", "development", "--example", "auth-server",
		"--service", "auth-server", "--username", reg.Username, "--signing-key", "file:" + key.private}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "a wrong password", args: []string{"--password", "file:" + wrong, "--registry-ca", reg.CAFile},
			want: "registry " + reg.Host + ` refused the credentials of user "` + reg.Username + `" (HTTP 401)`},
		{name: "the registry's CA not given", args: []string{"--password", "file:" + reg.PasswordFile},
			want: "registry " + reg.Host + ": its TLS certificate is signed by an authority this pipeline does not trust; give the registry's CA with --registry-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := m.Call(ctx, "publish", append(append([]string{}, base...), tc.args...))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			requireNoSecret(t, out+err.Error(), reg, key)
		})
	}
}

// stepDetail is the detail of the report's step called name.
func stepDetail(res report.Result, name string) string {
	for _, s := range res.Steps {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}
