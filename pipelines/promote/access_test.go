package promote

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	pregistry "github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
)

// countingBudget counts the retries a copy asks for: a refused login or
// certificate asks for none.
type countingBudget struct {
	next  retry.Backoff
	asked *int
}

func (c countingBudget) Next() (time.Duration, bool) {
	*c.asked++
	return c.next.Next()
}

// Two real distribution registries, each with its own account and its own
// CA: one CA bundle trusts both, each side logs in with its own account,
// and a refusal names the side, its registry and its flags, at once.
func TestRunBetweenTwoRegistriesThatCheckCredentials(t *testing.T) {
	src, dst := registrytest.Start(t), registrytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idx, err := random.Index(256, 1, 2)
	require.NoError(t, err)
	d, err := idx.Digest()
	require.NoError(t, err)
	from := src.Ref(t, "krgeobuk/auth-server@"+d.String())
	require.NoError(t, remote.WriteIndex(from, idx, src.Options(ctx)...))
	plan, err := Plan(map[string]string{"auth-server": from.Name()}, mustDest(t, dst.Host))
	require.NoError(t, err)

	both, err := pregistry.Trust(append(append([]byte{}, src.CAPEM...), dst.CAPEM...))
	require.NoError(t, err)
	srcOnly, err := pregistry.Trust(src.CAPEM)
	require.NoError(t, err)
	login := func(r *registrytest.Registry, password string) remote.Option {
		return remote.WithAuth(&authn.Basic{Username: r.Username, Password: password})
	}
	srcAccess := pregistry.Access{User: src.Username, Flags: "source-"}
	dstAccess := pregistry.Access{User: dst.Username}
	for _, tc := range []struct {
		name       string
		opts       Options
		wantErr    string
		wantReason pregistry.AccessReason
	}{
		{name: "a wrong destination password", opts: Options{
			Source: []remote.Option{both, login(src, src.Password)}, Dest: []remote.Option{both, login(dst, "x"+dst.Password)},
			SourceAccess: srcAccess, DestAccess: dstAccess},
			wantErr: "registry " + dst.Host + ` refused the credentials of user "` + dst.Username + `" (HTTP 401)`, wantReason: pregistry.WrongCredentials},
		{name: "a wrong source password", opts: Options{
			Source: []remote.Option{both, login(src, "x"+src.Password)}, Dest: []remote.Option{both, login(dst, dst.Password)},
			SourceAccess: srcAccess, DestAccess: dstAccess},
			wantErr: "registry " + src.Host + ` refused the credentials of user "` + src.Username + `" (HTTP 401)`, wantReason: pregistry.WrongCredentials},
		{name: "no source credentials", opts: Options{
			Source: []remote.Option{both}, Dest: []remote.Option{both, login(dst, dst.Password)},
			SourceAccess: pregistry.Access{Flags: "source-"}, DestAccess: dstAccess},
			wantErr: "registry " + src.Host + " requires credentials: give --source-username and --source-password", wantReason: pregistry.NoCredentials},
		{name: "the destination's CA not trusted", opts: Options{
			Source: []remote.Option{srcOnly, login(src, src.Password)}, Dest: []remote.Option{srcOnly, login(dst, dst.Password)},
			SourceAccess: srcAccess, DestAccess: dstAccess},
			wantErr:    "registry " + dst.Host + ": its TLS certificate is signed by an authority this pipeline does not trust; give the registry's CA with --registry-ca",
			wantReason: pregistry.UnknownAuthority},
		{name: "each side's account, one CA bundle: copied", opts: Options{
			Source: []remote.Option{both, login(src, src.Password)}, Dest: []remote.Option{both, login(dst, dst.Password)},
			SourceAccess: srcAccess, DestAccess: dstAccess}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			tc.opts.NewBudget = func() retry.Backoff { return countingBudget{next: shortBudget(), asked: &asked} }
			res, err := Run(ctx, plan, tc.opts)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Len(t, res, 1)
				require.True(t, res[0].Copied)
				got, err := remote.Head(mustDigest(t, plan[0].To), dst.Options(ctx)...)
				require.NoError(t, err, "the destination serves the copy")
				require.Equal(t, d, got.Digest)
				return
			}
			require.ErrorContains(t, err, "promote auth-server: ")
			require.ErrorContains(t, err, tc.wantErr)
			var ae *pregistry.AccessError
			require.True(t, errors.As(err, &ae), "%T %v", err, err)
			require.Equal(t, tc.wantReason, ae.Reason)
			require.Zero(t, asked, "refused at once")
			require.Empty(t, res, "nothing copied")
			require.NotContains(t, err.Error(), src.Password)
			require.NotContains(t, err.Error(), dst.Password)
		})
	}
}
