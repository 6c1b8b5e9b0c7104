package registrytest

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"
)

func TestRegistryChecksCredentialsAndCA(t *testing.T) {
	r := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := random.Image(512, 2)
	require.NoError(t, err)
	want, err := img.Digest()
	require.NoError(t, err)
	ref := r.Ref(t, "krgeobuk/auth-server:v1")
	noRetry := remote.WithRetryPredicate(func(error) bool { return false })
	withoutCA := func() remote.Option {
		return remote.WithTransport(http.DefaultTransport.(*http.Transport).Clone())
	}

	require.NoError(t, remote.Write(ref, img, append(r.Options(ctx), noRetry)...), "push with the account and the CA")
	for _, tc := range []struct {
		name  string
		opts  []remote.Option
		check func(t *testing.T, err error)
	}{
		{name: "the account and the CA pull the image", opts: r.Options(ctx)},
		{name: "no credentials: 401", opts: []remote.Option{remote.WithTransport(r.Transport())},
			check: status(http.StatusUnauthorized)},
		{name: "a wrong password: 401", opts: []remote.Option{remote.WithTransport(r.Transport()),
			remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password + "x"})},
			check: status(http.StatusUnauthorized)},
		{name: "a wrong user: 401", opts: []remote.Option{remote.WithTransport(r.Transport()),
			remote.WithAuth(&authn.Basic{Username: "someone", Password: r.Password})},
			check: status(http.StatusUnauthorized)},
		{name: "without the CA: an unknown authority", opts: []remote.Option{withoutCA(), remote.WithAuth(r.Auth())},
			check: func(t *testing.T, err error) {
				var ua x509.UnknownAuthorityError
				require.ErrorAs(t, err, &ua, "%v", err)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := remote.Image(ref, append(tc.opts, remote.WithContext(ctx), noRetry)...)
			if tc.check != nil {
				require.Error(t, err)
				tc.check(t, err)
				return
			}
			require.NoError(t, err)
			d, err := got.Digest()
			require.NoError(t, err)
			require.Equal(t, want, d)
			layers, err := got.Layers()
			require.NoError(t, err)
			require.Len(t, layers, 2)
			rc, err := layers[0].Compressed()
			require.NoError(t, err, "a blob downloads")
			require.NoError(t, rc.Close())
		})
	}
	require.NotContains(t, r.LogTail(), r.Password, "the registry logs no password")
}

func status(code int) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var te *transport.Error
		require.True(t, errors.As(err, &te), "%T %v", err, err)
		require.Equal(t, code, te.StatusCode, "%v", err)
	}
}

// The attest branch attaches signatures and SBOMs as OCI 1.1 referrers:
// distribution v3.1.2 does not serve the referrers API, so
// go-containerregistry keeps them in the fallback tag sha256-<hex> and finds
// them there.
func TestReferrersFallBackToTheTagSchema(t *testing.T) {
	r := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subject, err := random.Image(256, 1)
	require.NoError(t, err)
	ref := r.Ref(t, "krgeobuk/portal-client:v1")
	require.NoError(t, remote.Write(ref, subject, r.Options(ctx)...))
	desc, err := remote.Head(ref, r.Options(ctx)...)
	require.NoError(t, err)

	art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.krgeobuk.test+json")
	attached := mutate.Subject(art, *desc).(v1.Image)
	artDigest, err := attached.Digest()
	require.NoError(t, err)
	require.NoError(t, remote.Write(r.Ref(t, "krgeobuk/portal-client@"+artDigest.String()), attached, r.Options(ctx)...))

	subjectDigest := ref.Context().Digest(desc.Digest.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.Host+"/v2/krgeobuk/portal-client/referrers/"+desc.Digest.String(), nil)
	require.NoError(t, err)
	req.SetBasicAuth(r.Username, r.Password)
	resp, err := (&http.Client{Transport: r.Transport()}).Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "distribution %s serves no referrers API", Version)

	idx, err := remote.Referrers(subjectDigest, r.Options(ctx)...)
	require.NoError(t, err)
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, m.Manifests, 1)
	require.Equal(t, artDigest, m.Manifests[0].Digest)
	require.Equal(t, "application/vnd.krgeobuk.test+json", m.Manifests[0].ArtifactType)
	tag := "sha256-" + strings.TrimPrefix(desc.Digest.String(), "sha256:")
	_, err = remote.Head(r.Ref(t, "krgeobuk/portal-client:"+tag), r.Options(ctx)...)
	require.NoError(t, err, "the referrers live in the fallback tag %s", tag)
}

func TestWriteLaysOutARegistryForAnotherProgram(t *testing.T) {
	dir := t.TempDir()
	s, err := Write(dir, Settings{Addr: "10.87.0.1:5000", Names: []string{"registry.dagger.local"}})
	require.NoError(t, err)
	require.Equal(t, "10.87.0.1:5000", s.Host)
	block, _ := pemDecode(t, dir+"/cert.pem")
	cert, err := x509.ParseCertificate(block)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(s.CAPEM))
	for _, host := range []string{"10.87.0.1", "127.0.0.1", "::1", "localhost", "registry.dagger.local"} {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool})
		require.NoError(t, err, "the certificate is valid for %s", host)
	}
	_, err = cert.Verify(x509.VerifyOptions{DNSName: "10.87.0.2", Roots: pool})
	require.Error(t, err, "and for no other host")
	cfg := readFile(t, s.Config)
	require.Contains(t, cfg, "addr: 10.87.0.1:5000")
	require.Contains(t, cfg, "enabled: true", "deletes are enabled")
	for _, f := range []string{s.Config, dir + "/htpasswd", dir + "/key.pem"} {
		require.NotContains(t, readFile(t, f), s.Password, "%s holds no password", f)
	}
	require.Contains(t, readFile(t, dir+"/htpasswd"), s.Username+":$2a$")

	_, err = Write(t.TempDir(), Settings{Addr: "10.87.0.1"})
	require.ErrorContains(t, err, "want host:port")
}
