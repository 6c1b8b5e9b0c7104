package image_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/image"
)

func TestPushPrintsExactDigestRefsThatResolve(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	b := &image.Bases{Repo: repo(t), Cache: cache(t)}

	pushed, err := b.Push(ctx, addr)
	require.NoError(t, err)
	refs := pushed.StandIns
	require.Len(t, refs, 5)
	for _, base := range image.BaseImages() {
		img := base.Name
		ref, ok := refs[img]
		require.True(t, ok, "push output lacks %s", img)
		require.Regexp(t, regexp.MustCompile(`^`+regexp.QuoteMeta(addr)+`/krgeobuk-e2e/`+img+`:bookworm-base-r1-[0-9a-f]{16}@sha256:[0-9a-f]{64}$`), ref,
			"%s must be pushed under an exact tag with its digest", img)
		require.NotContains(t, ref, ":latest")

		// both the digest and the tag resolve to what was pushed
		d, err := name.NewDigest(ref, name.Insecure)
		require.NoError(t, err)
		got, err := remote.Get(d, remote.WithContext(ctx))
		require.NoError(t, err)
		require.Equal(t, d.DigestStr(), got.Digest.String())
		tag, err := name.NewTag(strings.SplitN(ref, "@", 2)[0], name.Insecure)
		require.NoError(t, err)
		desc, err := remote.Head(tag, remote.WithContext(ctx))
		require.NoError(t, err)
		require.Equal(t, d.DigestStr(), desc.Digest.String())

		// node and nginx are one index of linux/amd64 and linux/arm64, the
		// others a single amd64 image; a client asking for linux/amd64
		// (the engine) gets the amd64 image from either
		wantPlatforms := map[string][]string{"node": {"linux/amd64", "linux/arm64"}, "nginx": {"linux/amd64", "linux/arm64"}}[img]
		if wantPlatforms == nil {
			require.Equal(t, types.OCIManifestSchema1, got.MediaType, img)
		} else {
			require.Equal(t, types.OCIImageIndex, got.MediaType, img)
			idx, err := got.ImageIndex()
			require.NoError(t, err)
			m, err := idx.IndexManifest()
			require.NoError(t, err)
			var platforms []string
			for _, md := range m.Manifests {
				require.NotNil(t, md.Platform, "%s: each manifest names its platform", img)
				platforms = append(platforms, md.Platform.String())
				child, err := idx.Image(md.Digest)
				require.NoError(t, err)
				cf, err := child.ConfigFile()
				require.NoError(t, err)
				require.Equal(t, md.Platform.String(), cf.Platform().String(), "%s: the descriptor's platform is the image's", img)
				// and it is the built layout of that variant, unchanged
				variant := base
				for _, v := range image.Arm64Variants() {
					if v.Name == img && "linux/"+v.Arch == md.Platform.String() {
						variant = v
					}
				}
				lp, err := b.LayoutPath(variant)
				require.NoError(t, err)
				built, err := image.ReadLayout(lp)
				require.NoError(t, err)
				bd, err := built.Digest()
				require.NoError(t, err)
				require.Equal(t, bd, md.Digest, "%s %s", img, md.Platform)
			}
			require.Equal(t, wantPlatforms, platforms)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			if arch == "arm64" && wantPlatforms == nil {
				continue
			}
			pulled, err := remote.Image(d, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
			require.NoError(t, err)
			cf, err := pulled.ConfigFile()
			require.NoError(t, err)
			require.Equal(t, arch, cf.Architecture, "%s@%s for linux/%s", img, d.DigestStr(), arch)
		}

		// the module's default, less its digest, is the stand-in on the
		// docker.io mirror at addr
		def, _, _ := strings.Cut(base.Default, "@")
		require.Equal(t, def, pushed.Defaults[img])
		require.True(t, strings.HasPrefix(def, "docker.io/"), "%s: the engine mirrors docker.io only", def)
		mirrored, err := name.NewTag(addr+"/"+strings.TrimPrefix(def, "docker.io/"), name.Insecure)
		require.NoError(t, err)
		desc, err = remote.Head(mirrored, remote.WithContext(ctx))
		require.NoError(t, err, "%s on the mirror", def)
		require.Equal(t, d.DigestStr(), desc.Digest.String(), "%s on the mirror is the stand-in", def)
	}

	// the pulled nginx image is the unprivileged one
	d, _ := name.NewDigest(refs["nginx"], name.Insecure)
	pulled, err := remote.Image(d, remote.WithContext(ctx))
	require.NoError(t, err)
	cf, err := pulled.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "101:101", cf.Config.User)

	// pushing again changes nothing: same refs
	again, err := b.Push(ctx, addr)
	require.NoError(t, err)
	require.Equal(t, pushed, again)
}

func TestPushRefusesABadRegistryAddress(t *testing.T) {
	b := &image.Bases{Repo: repo(t), Cache: t.TempDir()}
	for _, bad := range []string{"", "http://127.0.0.1:5000", "127.0.0.1:5000/extra", "UPPER CASE"} {
		t.Run(bad, func(t *testing.T) {
			_, err := b.Push(context.Background(), bad)
			require.ErrorContains(t, err, "is not a host[:port] address")
		})
	}
}
