package sbom_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/sbom"
)

var subject = sbom.Subject{Repository: "registry.example/krgeobuk/auth-server", Digest: "sha256:" + strings.Repeat("ab", 32)}

func examples(t *testing.T, name string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "examples", name, "package-lock.json"))
	require.NoError(t, err)
	return data
}

// The examples' real lockfiles: every installed package is a component,
// with its purl, hashes, licence and whether it ships.
func TestFromLockfileOnTheExamples(t *testing.T) {
	for _, tc := range []struct {
		example       string
		wantComponent cdx.Component
		wantDev       string
	}{
		{"auth-api", cdx.Component{Group: "@nestjs", Name: "common", PackageURL: "pkg:npm/%40nestjs/common@10.4.9", Scope: cdx.ScopeRequired}, "pkg:npm/typescript@5.9.3"},
		{"spa", cdx.Component{Name: "vite", PackageURL: "pkg:npm/vite@5.4.9", Scope: cdx.ScopeExcluded}, "pkg:npm/vite@5.4.9"},
	} {
		t.Run(tc.example, func(t *testing.T) {
			lock := examples(t, tc.example)
			var raw struct {
				Packages map[string]struct{ Version string } `json:"packages"`
			}
			require.NoError(t, json.Unmarshal(lock, &raw))
			installed := map[string]bool{}
			for path, p := range raw.Packages {
				if path != "" {
					installed[path[strings.LastIndex(path, "node_modules/")+len("node_modules/"):]+"@"+p.Version] = true
				}
			}

			bom, err := sbom.FromLockfile(lock, subject)
			require.NoError(t, err)
			data, err := sbom.Encode(bom)
			require.NoError(t, err)
			back, err := sbom.Decode(data)
			require.NoError(t, err)

			got, ok := sbom.SubjectOf(back)
			require.True(t, ok)
			require.Equal(t, subject, got)
			require.Equal(t, cdx.ComponentTypeContainer, back.Metadata.Component.Type)
			require.Equal(t, len(installed), len(*back.Components), "every package installed (name@version, all but the root project) is a component")

			byPURL := map[string]cdx.Component{}
			for _, c := range *back.Components {
				require.NotEmpty(t, c.Version, c.Name)
				require.NotNil(t, c.Hashes, "%s has its integrity hash", c.PackageURL)
				require.Len(t, (*c.Hashes)[0].Value, 128, "sha512 in hex")
				byPURL[c.PackageURL] = c
			}
			c, ok := byPURL[tc.wantComponent.PackageURL]
			require.True(t, ok, "%s listed", tc.wantComponent.PackageURL)
			require.Equal(t, tc.wantComponent.Group, c.Group)
			require.Equal(t, tc.wantComponent.Name, c.Name)
			require.Equal(t, tc.wantComponent.Scope, c.Scope)
			require.NotNil(t, c.Licenses)
			require.Equal(t, "MIT", (*c.Licenses)[0].License.ID)
			require.Equal(t, cdx.ScopeExcluded, byPURL[tc.wantDev].Scope, "a development dependency does not ship")
		})
	}
}

// The same image and lockfile give byte-identical documents, so a second
// publish of one image pushes nothing new.
func TestFromLockfileIsDeterministic(t *testing.T) {
	lock := examples(t, "auth-api")
	var docs [2][]byte
	for i := range docs {
		bom, err := sbom.FromLockfile(lock, subject)
		require.NoError(t, err)
		docs[i], err = sbom.Encode(bom)
		require.NoError(t, err)
	}
	require.Equal(t, string(docs[0]), string(docs[1]))
}

func TestFromLockfileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lock    string
		subject sbom.Subject
		want    string
	}{
		{"not JSON", "node_modules/", subject, "package-lock.json is not JSON"},
		{"a package.json", `{"name":"x","dependencies":{"a":"1"}}`, subject, "no lockfileVersion: is it an npm lockfile?"},
		{"lockfile v1", `{"lockfileVersion":1,"dependencies":{}}`, subject, "lockfile version 1, which has no packages map: regenerate it with npm 7 or newer"},
		{"v3 without packages", `{"lockfileVersion":3}`, subject, "(lockfile version 3) has no packages map"},
		{"bad integrity", `{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.0.0","integrity":"md5-xx"}}}`, subject, `packages["node_modules/a"]: integrity "md5-xx": unknown algorithm "md5"`},
		{"no version", `{"lockfileVersion":3,"packages":{"node_modules/a":{}}}`, subject, `packages["node_modules/a"] names no package and version`},
		{"subject by tag", `{"lockfileVersion":3,"packages":{}}`, sbom.Subject{Repository: "r/x", Digest: "v1"}, "not an image pinned by digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sbom.FromLockfile([]byte(tc.lock), tc.subject)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestLicences(t *testing.T) {
	lock := `{"lockfileVersion":3,"packages":{
		"node_modules/a":{"version":"1.0.0","license":"(MIT OR Apache-2.0)"},
		"node_modules/b":{"version":"1.0.0","license":"SEE LICENSE IN LICENSE.md"},
		"node_modules/c":{"version":"1.0.0"},
		"node_modules/d":{"version":"1.0.0","optional":true},
		"node_modules/e":{"link":true,"resolved":"packages/e"}}}`
	bom, err := sbom.FromLockfile([]byte(lock), subject)
	require.NoError(t, err)
	comps := *bom.Components
	require.Len(t, comps, 4, "the link is left out")
	require.Equal(t, "(MIT OR Apache-2.0)", (*comps[0].Licenses)[0].Expression)
	require.Equal(t, "SEE LICENSE IN LICENSE.md", (*comps[1].Licenses)[0].License.Name)
	require.Nil(t, comps[2].Licenses)
	require.Equal(t, cdx.ScopeOptional, comps[3].Scope)
}
