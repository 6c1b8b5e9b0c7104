package examples_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
)

// The example SPA builds to what the chart's nginx.conf expects: an
// index.html shell at the root and content-hashed assets, which the config
// caches as immutable.
func TestSPABuildsForTheChartsNginx(t *testing.T) {
	requireNode(t)
	dir := checkout(t, "spa")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, dir, npmEnv(nil), "npm", "run", "build")
	require.NoError(t, err, "npm run build:\n%s", out)

	index, err := os.ReadFile(filepath.Join(dir, "dist", "index.html"))
	require.NoError(t, err)
	assets := regexp.MustCompile(`(?:src|href)="/(assets/[^"]+)"`).FindAllStringSubmatch(string(index), -1)
	require.NotEmpty(t, assets, "index.html loads its bundle from /assets")

	src, err := appenv.EmbeddedSource("production")
	require.NoError(t, err)
	conf, err := appenv.NginxConf(ctx, src, "auth-client")
	require.NoError(t, err)
	immutable := regexp.MustCompile(`location ~\* (\\\.\(\?:[^)]+\)\$)`).FindStringSubmatch(conf)
	require.Len(t, immutable, 2, "the chart's nginx.conf has a location for hashed assets")
	assetRule := regexp.MustCompile(immutable[1])
	hashed := regexp.MustCompile(`-[A-Za-z0-9_-]{8,}\.`)
	for _, a := range assets {
		require.FileExists(t, filepath.Join(dir, "dist", a[1]))
		require.Regexp(t, assetRule, a[1], "nginx caches %s as immutable", a[1])
		require.Regexp(t, hashed, a[1], "%s must carry a content hash to be cached as immutable", a[1])
	}
}
