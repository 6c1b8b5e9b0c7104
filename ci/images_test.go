package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

// pinnedImage is name:tag@sha256:<64 hex>: the tag says which version a
// reader expects, the digest is what runs.
var pinnedImage = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@sha256:[0-9a-f]{64}$`)

// publicRegistries are where the module's default images come from; any
// string literal naming an image there is a default.
var publicRegistries = []string{"docker.io/", "ghcr.io/", "quay.io/", "gcr.io/", "registry.k8s.io/", "public.ecr.aws/"}

// The module's default base images are pinned by tag and digest, so a build,
// a test run and a check are the same tomorrow. The list is not only the
// known constants: every image literal in the module's sources and in the
// packages choosing its images is found and checked, so a new default added
// with a tag only fails here.
func TestDefaultImagesArePinned(t *testing.T) {
	known := map[string]string{
		"build.NodeImage": build.NodeImage, "build.NginxImage": build.NginxImage,
		"itest.MySQLImage": itest.MySQLImage, "itest.RedisImage": itest.RedisImage,
		"build.GoImage": build.GoImage,
	}
	for what, ref := range known {
		require.Regexp(t, pinnedImage, ref, "%s must be name:tag@sha256:<64 hex>", what)
		_, err := name.NewDigest(ref, name.StrictValidation)
		require.NoError(t, err, what)
	}

	found := map[string]string{}
	for _, dir := range []string{".", "graphs", "../pipelines/build", "../pipelines/itest"} {
		for ref, where := range imageLiterals(t, dir) {
			found[ref] = where
		}
	}
	for _, ref := range known {
		require.Contains(t, found, ref, "the scan finds the known defaults (or it finds nothing)")
	}
	for ref, where := range found {
		require.Regexp(t, pinnedImage, ref, "%s: a default image must be name:tag@sha256:<64 hex>", where)
	}
}

// The pattern itself: what it must refuse.
func TestPinnedImagePattern(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	for _, ok := range []string{"docker.io/library/node:22.22.0-bookworm-slim" + digest, "127.0.0.1:5000/x/golang:1.26" + digest} {
		require.Regexp(t, pinnedImage, ok)
	}
	for _, bad := range []string{
		"docker.io/library/golang:1.26.8-bookworm",                    // tag only
		"docker.io/library/node" + digest,                             // digest only
		"docker.io/library/node:latest@sha256:abc",                    // short digest
		"docker.io/library/node:22@sha256:" + strings.Repeat("A", 64), // not lower hex
		"node:22" + digest,                                            // no registry or path
	} {
		require.NotRegexp(t, pinnedImage, bad)
	}
}

// imageLiterals returns the string literals of dir's non-test Go files that
// name an image in a public registry, with where each was found.
func imageLiterals(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, dir)
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, ".gen.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		file, err := parser.ParseFile(fset, f, src, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			v, err := strconv.Unquote(lit.Value)
			require.NoError(t, err)
			for _, r := range publicRegistries {
				if strings.HasPrefix(v, r) && !strings.ContainsAny(v, " \n") {
					out[v] = fset.Position(lit.Pos()).String()
				}
			}
			return true
		})
	}
	return out
}
