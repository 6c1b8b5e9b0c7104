package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
)

// flaky serves a real OCI registry, but answers 503 to the first `fail`
// manifest requests (fail < 0: always), counting every manifest request.
type flaky struct {
	next     http.Handler
	fail     atomic.Int64
	requests atomic.Int64
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/manifests/") && r.Method != http.MethodPut {
		f.requests.Add(1)
		if n := f.fail.Load(); n != 0 {
			f.fail.Add(-1)
			if n < 0 {
				f.fail.Store(-1)
			}
			http.Error(w, "registry overloaded", http.StatusServiceUnavailable)
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

// startRegistry runs an in-process registry holding one synthetic image,
// pushed as <host>/krgeobuk/auth-server:1.0.0, and returns the host, the
// handler wrapper and the image's digest.
func startRegistry(t *testing.T) (string, *flaky, string) {
	t.Helper()
	f := &flaky{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	ref, err := name.ParseReference(host + "/krgeobuk/auth-server:1.0.0")
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))
	d, err := img.Digest()
	require.NoError(t, err)
	f.requests.Store(0)
	return host, f, d.String()
}

func fastBudget() retry.Backoff {
	return retry.WithMaxRetries(5, retry.NewConstant(10*time.Millisecond))
}

func TestResolve(t *testing.T) {
	host, f, digest := startRegistry(t)
	missing := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name      string
		ref       string
		fail      int64 // 503s before the registry answers; -1 never answers
		wantErr   string
		notFound  bool
		wantCalls int64
	}{
		{name: "by tag pins the digest", ref: host + "/krgeobuk/auth-server:1.0.0", wantCalls: 1},
		{name: "by digest", ref: host + "/krgeobuk/auth-server@" + digest, wantCalls: 1},
		{name: "503 three times is retried", ref: host + "/krgeobuk/auth-server@" + digest, fail: 3, wantCalls: 4},
		{name: "503 beyond the budget fails naming service and ref", ref: host + "/krgeobuk/auth-server@" + digest, fail: -1,
			wantErr: "service auth-server: image " + host + "/krgeobuk/auth-server@" + digest + ": registry did not answer after 6 attempts", wantCalls: 6},
		{name: "missing digest is refused at once", ref: host + "/krgeobuk/auth-server@" + missing, notFound: true,
			wantErr: "service auth-server: image " + host + "/krgeobuk/auth-server@" + missing + " not found in its registry", wantCalls: 1},
		{name: "missing repository is refused at once", ref: host + "/krgeobuk/nothing:1.0.0", notFound: true,
			wantErr: "service auth-server: image " + host + "/krgeobuk/nothing:1.0.0 not found", wantCalls: 1},
		{name: "invalid reference", ref: "UPPER/case:x", wantErr: `service auth-server: image reference "UPPER/case:x" is invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.fail.Store(tt.fail)
			f.requests.Store(0)
			r := &registry.Resolver{NewBudget: fastBudget}
			img, err := r.Resolve(context.Background(), "auth-server", tt.ref)
			require.Equal(t, tt.wantCalls, f.requests.Load(), "manifest requests")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				var nf *registry.NotFoundError
				require.Equal(t, tt.notFound, errors.As(err, &nf))
				return
			}
			require.NoError(t, err)
			require.Equal(t, digest, img.Digest)
			require.Equal(t, host+"/krgeobuk/auth-server", img.Repository)
			require.Equal(t, host+"/krgeobuk/auth-server@"+digest, img.Pinned())
			if !strings.Contains(tt.ref, "@") {
				require.Equal(t, tt.ref[strings.LastIndex(tt.ref, ":")+1:], img.Tag, "a reference by tag keeps its tag")
			} else {
				require.Empty(t, img.Tag, "a reference by digest names no tag")
			}
		})
	}
}

func TestResolveAllNamesEveryFailure(t *testing.T) {
	host, _, digest := startRegistry(t)
	r := &registry.Resolver{NewBudget: fastBudget}
	_, err := r.ResolveAll(context.Background(), map[string]string{
		"auth-server":   host + "/krgeobuk/auth-server@" + digest,
		"authz-server":  host + "/krgeobuk/authz-server:1.0.0",
		"portal-client": host + "/krgeobuk/portal-client:1.0.0",
	})
	require.ErrorContains(t, err, "service authz-server: image "+host+"/krgeobuk/authz-server:1.0.0 not found")
	require.ErrorContains(t, err, "service portal-client: image "+host+"/krgeobuk/portal-client:1.0.0 not found")
	require.NotContains(t, err.Error(), "service auth-server")

	imgs, err := r.ResolveAll(context.Background(), map[string]string{"auth-server": host + "/krgeobuk/auth-server:1.0.0"})
	require.NoError(t, err)
	require.Equal(t, []registry.Image{{Service: "auth-server", Ref: host + "/krgeobuk/auth-server:1.0.0",
		Repository: host + "/krgeobuk/auth-server", Digest: digest, Tag: "1.0.0"}}, imgs, "a reference by tag keeps its tag beside the digest")
}

func TestResolveStopsWhenCancelled(t *testing.T) {
	host, f, digest := startRegistry(t)
	f.fail.Store(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := &registry.Resolver{NewBudget: func() retry.Backoff { return retry.NewConstant(20 * time.Millisecond) }}
	_, err := r.Resolve(ctx, "auth-server", fmt.Sprintf("%s/krgeobuk/auth-server@%s", host, digest))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "service auth-server")
}
