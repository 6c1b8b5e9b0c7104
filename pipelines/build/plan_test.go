package build

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

func TestDefaultImagesArePinnedByDigest(t *testing.T) {
	for _, ref := range []string{NodeImage, NginxImage} {
		require.NoError(t, CheckImage(ref))
		require.Regexp(t, `:[0-9][^@]*@sha256:[0-9a-f]{64}$`, ref, "exact tag and digest")
	}
}

func TestCheckImage(t *testing.T) {
	tests := []struct {
		ref     string
		wantErr string
	}{
		{ref: "127.0.0.1:5000/library/node:22.22.0-bookworm-slim"},
		{ref: "node@sha256:dd9d21971ec4395903fa6143c2b9267d048ae01ca6d3ea96f16cb30df6187d94"},
		{ref: "node", wantErr: `image "node" has no tag or digest; pin it`},
		{ref: "node:latest", wantErr: `image "node:latest": the tag latest is not a pin`},
		{ref: "Node:22", wantErr: `image "Node:22"`},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			err := CheckImage(tt.ref)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	_, err := DefaultImages().WithOverrides("", "nginx")
	require.ErrorContains(t, err, `nginx image: image "nginx" has no tag or digest`)
	got, err := DefaultImages().WithOverrides("127.0.0.1:5000/node:22", "")
	require.NoError(t, err)
	require.Equal(t, Images{Node: "127.0.0.1:5000/node:22", Nginx: NginxImage}, got)
}

func TestCheckPlatforms(t *testing.T) {
	got, err := CheckPlatforms([]string{"linux/arm64", " linux/amd64", "linux/arm64"})
	require.NoError(t, err)
	require.Equal(t, []string{"linux/arm64", "linux/amd64"}, got)

	got, err = CheckPlatforms(nil)
	require.NoError(t, err)
	require.Empty(t, got)

	_, err = CheckPlatforms([]string{"windows/amd64"})
	require.ErrorContains(t, err, `platform "windows/amd64" is not supported (supported: linux/amd64, linux/arm64)`)
}

func TestLabels(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("KST", 9*3600))
	got, err := Labels{Source: DefaultSource, Revision: "0123abc", Created: created}.Map("auth-server")
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"org.opencontainers.image.title":    "auth-server",
		"org.opencontainers.image.source":   DefaultSource,
		"org.opencontainers.image.revision": "0123abc",
		"org.opencontainers.image.created":  "2026-01-01T18:04:05Z",
	}, got)

	_, err = Labels{Revision: "main"}.Map("auth-server")
	require.ErrorContains(t, err, `label revision "main": want a hex commit id`)
	_, err = Labels{Source: "git@github.com:krgeobuk/x"}.Map("auth-server")
	require.ErrorContains(t, err, "want an https:// repository URL")
}

func TestTargets(t *testing.T) {
	got, err := Targets("ghcr.io/krgeobuk/", "0123abc", []string{"portal-client", "auth-server"})
	require.NoError(t, err)
	require.Equal(t, []Target{
		{Service: "auth-server", Repository: "ghcr.io/krgeobuk/auth-server", Address: "ghcr.io/krgeobuk/auth-server:0123abc"},
		{Service: "portal-client", Repository: "ghcr.io/krgeobuk/portal-client", Address: "ghcr.io/krgeobuk/portal-client:0123abc"},
	}, got, "deploy order, registry path kept")

	got, err = Targets("127.0.0.1:5000", "v1", nil)
	require.NoError(t, err)
	require.Len(t, got, 4, "no services means all")

	tests := []struct {
		name, registry, tag string
		services            []string
		wantErr             string
	}{
		{name: "unknown service", registry: "ghcr.io/krgeobuk", tag: "v1", services: []string{"billing"}, wantErr: `unknown service "billing"`},
		{name: "scheme", registry: "https://ghcr.io/krgeobuk", tag: "v1", wantErr: "without a scheme"},
		{name: "empty", registry: " ", tag: "v1", wantErr: "registry is empty"},
		{name: "no host", registry: "krgeobuk", tag: "v1", wantErr: `registry "krgeobuk": the first part must be a registry host`},
		{name: "bad characters", registry: "ghcr.io/Krgeobuk", tag: "v1", wantErr: `registry "ghcr.io/Krgeobuk"`},
		{name: "latest", registry: "ghcr.io/krgeobuk", tag: "latest", wantErr: `tag "latest": give an exact tag`},
		{name: "bad tag", registry: "ghcr.io/krgeobuk", tag: "a b", wantErr: `tag "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Targets(tt.registry, tt.tag, tt.services)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestPinned(t *testing.T) {
	tg := Target{Service: "auth-server", Repository: "ghcr.io/krgeobuk/auth-server", Address: "ghcr.io/krgeobuk/auth-server:v1"}
	d := "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	got, err := tg.Pinned("ghcr.io/krgeobuk/auth-server:v1@" + d)
	require.NoError(t, err)
	require.Equal(t, "ghcr.io/krgeobuk/auth-server@"+d, got)

	_, err = tg.Pinned("ghcr.io/krgeobuk/auth-server:v1")
	require.ErrorContains(t, err, "service auth-server: publish answered")
	_, err = tg.Pinned("ghcr.io/other/auth-server@" + d)
	require.ErrorContains(t, err, "outside ghcr.io/krgeobuk/auth-server")
}

func TestRequestVariants(t *testing.T) {
	api, err := catalog.Lookup("auth-server")
	require.NoError(t, err)
	spa, err := catalog.Lookup("auth-client")
	require.NoError(t, err)
	tests := []struct {
		name    string
		req     Request
		want    []string
		wantErr string
	}{
		{"the engine's platform", Request{Service: api}, []string{""}, ""},
		{"given, deduplicated", Request{Service: api, Platforms: []string{"linux/arm64", "linux/amd64", "linux/arm64"}}, []string{"linux/arm64", "linux/amd64"}, ""},
		{"unsupported", Request{Service: api, Platforms: []string{"windows/amd64"}}, nil, `build auth-server: platform "windows/amd64" is not supported (supported: linux/amd64, linux/arm64)`},
		{"an SPA without nginx.conf", Request{Service: spa}, nil, "build auth-client: an SPA needs the chart's nginx.conf"},
		{"an SPA with it", Request{Service: spa, NginxConf: "events {}"}, []string{""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.Variants()
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, []string{"a", "b", "c"}, Request{Labels: map[string]string{"c": "", "a": "", "b": ""}}.SortedLabels())
}

func TestTargetRegistry(t *testing.T) {
	ts, err := Targets("127.0.0.1:5000/krgeobuk", "v1", []string{"auth-server"})
	require.NoError(t, err)
	host, err := ts[0].Registry()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:5000", host)
}
