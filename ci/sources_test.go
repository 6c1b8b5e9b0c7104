package main

// Contract tests of the services' sources: which directory, git ref or
// example each build takes, on the FAKE session, and every refusal before a
// single query.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"dagger/krgeobuk/internal/dagger"
	"dagger/krgeobuk/internal/fakesession"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Every service of the catalog has its directory argument on publish and
// deploy: a service added to the catalog without one fails here.
func TestServiceDirectoriesCoverTheCatalog(t *testing.T) {
	d := dag.Directory()
	got := serviceDirectories(d, d, d, d)
	var names []string
	for name, dir := range got {
		require.NotNil(t, dir, name)
		names = append(names, name)
	}
	require.ElementsMatch(t, catalog.Names(), names)
	require.Equal(t, []string{"auth-server"}, sourceArgs{dirs: serviceDirectories(d, nil, nil, nil)}.decide().Directories)
	require.Equal(t, []string{"portal-client"}, sourceArgs{dirs: serviceDirectories(nil, nil, nil, d)}.decide().Directories)
}

// Each service is built from its own directory argument, not a neighbour's:
// the i-th directory argument reaches the i-th service's build.
func TestPublishBuildsEachServiceFromItsOwnDirectory(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	dirs := map[string]*dagger.Directory{}
	for _, svc := range catalog.Names() {
		dirs[svc] = dag.Directory().WithNewFile("package.json", `{"name":"`+svc+`"}`)
	}
	refs, err := module().Publish(ctx, "127.0.0.1:5000/krgeobuk", "v1", nil,
		dirs["auth-server"], dirs["authz-server"], dirs["auth-client"], dirs["portal-client"], nil, nil, nil,
		"", nil, nil, nil, "development", "", "", "", "", nil, nil)
	require.NoError(t, err)
	require.Len(t, refs, 4)
	published := publishQueries()
	require.Len(t, published, 4)
	for _, q := range published {
		svc := serviceOf(t, q)
		all := flat(q.Chain)
		require.Contains(t, argList(all, "withNewFile", "contents"), `{"name":"`+svc+`"}`, svc)
		for _, c := range argList(all, "withNewFile", "contents") {
			if strings.HasPrefix(c, `{"name":`) {
				require.Equal(t, `{"name":"`+svc+`"}`, c, "%s built from another service's checkout", svc)
			}
		}
		require.Empty(t, calls(all, "git"), "no git fetch for a checkout")
		require.NotContains(t, argList(all, "directory", "path"), build.Examples[catalog.KindAPI])
		require.NotContains(t, argList(all, "directory", "path"), build.Examples[catalog.KindSPA])
	}
}

// A git source is fetched by the engine's own git: the ref is resolved to a
// commit once, the tree of that commit is built, and the image says which
// remote and commit it came from; the token travels as a secret object.
func TestPublishFromGitRefs(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	const token = "ghp-contract-git-token-51d9"
	gitToken := dag.SetSecret("git-token", token)
	refs, err := module().Publish(ctx, "127.0.0.1:5000/krgeobuk", "v1", []string{"auth-server", "portal-client"}, nil, nil, nil, nil,
		[]string{"auth-server=https://github.com/krgeobuk/auth-server.git#main", "portal-client=https://github.com/krgeobuk/portal-client#v1.4.2"},
		gitToken, nil, "", nil, nil, nil, "development", "", "", "", "", nil, nil)
	require.NoError(t, err)
	require.Len(t, refs, 2)

	var commits []fakesession.Query
	for _, q := range fake.Queries() {
		if q.Leaf().Field == "commit" {
			commits = append(commits, q)
		}
	}
	require.Len(t, commits, 2, "each ref resolved once, before the build")
	want := map[string]struct{ url, ref string }{
		"auth-server":   {"https://github.com/krgeobuk/auth-server.git", "main"},
		"portal-client": {"https://github.com/krgeobuk/portal-client", "v1.4.2"},
	}
	for _, q := range publishQueries() {
		svc := serviceOf(t, q)
		all := flat(q.Chain)
		gits := calls(all, "git")
		require.NotEmpty(t, gits, svc)
		require.Equal(t, []string{want[svc].url}, slices.Compact(argList(all, "git", "url")), "%s fetched from its own remote only", svc)
		tokenChain := chainOf(t, fmt.Sprint(gits[0].Args["httpAuthToken"]))
		require.Equal(t, "setSecret", tokenChain[len(tokenChain)-1].Field, "the token is a secret object")
		// The tree built is the resolved commit's, not the ref's.
		var commitID string
		for i, c := range all {
			if c.Field == "commit" && c.Args["id"] != nil {
				commitID = fmt.Sprint(c.Args["id"])
				require.Equal(t, "tree", all[i+1].Field)
				require.Equal(t, true, all[i+1].Args["discardGitDir"])
			}
		}
		require.Regexp(t, `^[0-9a-f]{40}$`, commitID, svc)
		var resolvedFrom []fakesession.Call
		for _, cq := range commits {
			if fmt.Sprint(calls(cq.Chain, "git")[0].Args["url"]) == want[svc].url {
				resolvedFrom = cq.Chain
			}
		}
		require.Equal(t, []string{want[svc].ref}, argList(resolvedFrom, "ref", "name"), "%s: the ref named, resolved", svc)

		labels := map[string]string{}
		for _, c := range calls(all, "withLabel") {
			labels[fmt.Sprint(c.Args["name"])] = fmt.Sprint(c.Args["value"])
		}
		require.Equal(t, strings.TrimSuffix(want[svc].url, ".git"), labels["org.opencontainers.image.source"], svc)
		require.Equal(t, commitID, labels["org.opencontainers.image.revision"], "%s: labelled with the commit built", svc)
	}
	requireNoPlaintextOutsideSetSecret(t, []string{token})
}

// deploy hands its sources to the build it runs before the release: the
// services are published from their own checkouts, and only then is the
// kubeconfig read (here it names no cluster, so the deploy stops there).
func TestDeployBuildsFromTheGivenSources(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	kubeconfig := dag.SetSecret("kubeconfig", "apiVersion: v1\nkind: Config\n")
	dirs := map[string]*dagger.Directory{}
	for _, svc := range catalog.Names() {
		dirs[svc] = dag.Directory().WithNewFile("package.json", `{"name":"`+svc+`"}`)
	}
	_, err := module().Deploy(ctx, "development", kubeconfig, "apps", nil, "127.0.0.1:5000/krgeobuk", "v1", nil,
		dirs["auth-server"], dirs["authz-server"], nil, dirs["portal-client"], []string{"auth-client=https://github.com/krgeobuk/auth-client#main"}, nil,
		nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
	require.ErrorContains(t, err, "invalid configuration", "built and published, then stopped at the kubeconfig")
	published := publishQueries()
	require.Len(t, published, 4)
	for _, q := range published {
		svc := serviceOf(t, q)
		all := flat(q.Chain)
		if svc == "auth-client" {
			require.Equal(t, []string{"https://github.com/krgeobuk/auth-client"}, slices.Compact(argList(all, "git", "url")))
			continue
		}
		require.Empty(t, calls(all, "git"), svc)
		require.Contains(t, argList(all, "withNewFile", "contents"), `{"name":"`+svc+`"}`, "%s built from its own checkout", svc)
	}
	var leaves []string
	for _, q := range fake.Queries() {
		leaves = append(leaves, q.Leaf().Field)
	}
	require.Equal(t, "plaintext", leaves[len(leaves)-1], "the kubeconfig is read after the publish")
}

// Every source mistake is refused before the function sends one query, with
// what to pass instead; the examples never reach staging or production
// through any function that builds.
func TestSourceRefusalsBeforeAnyCall(t *testing.T) {
	ctx := context.Background()
	m := module()
	kubeconfig := dag.SetSecret("kubeconfig", "apiVersion: v1\nkind: Config\n")
	d := dag.Directory()
	tests := []struct {
		name    string
		call    func() error
		wantErr []string
	}{
		{"build: no source", func() error {
			_, err := m.Build(ctx, "auth-server", nil, "", nil, false, nil, "development", "", "", "", "")
			return err
		}, []string{"build: auth-server has no source: give its checkout (--source DIR) or a git ref (--git URL#REF), or --example to build this repository's example"}},
		{"build: an example for production (the default environment)", func() error {
			_, err := m.Build(ctx, "auth-server", nil, "", nil, true, nil, "production", "", "", "", "")
			return err
		}, []string{"--example auth-server: the examples are never built for production (only for development); give the service's own source"}},
		{"build: an example for staging", func() error {
			_, err := m.Build(ctx, "auth-client", nil, "", nil, true, nil, "staging", "", "", "", "")
			return err
		}, []string{"the examples are never built for staging"}},
		{"build: a checkout and a git ref", func() error {
			_, err := m.Build(ctx, "auth-server", d, "https://github.com/krgeobuk/auth-server#main", nil, false, nil, "staging", "", "", "", "")
			return err
		}, []string{"auth-server has two sources (--source and --git auth-server=https://github.com/krgeobuk/auth-server#main); give one"}},
		{"build: a git URL carrying a token", func() error {
			_, err := m.Build(ctx, "auth-server", nil, "https://ci:ghp_leaked999@github.com/krgeobuk/auth-server#main", nil, false, nil, "staging", "", "", "", "")
			return err
		}, []string{"credentials in a git URL would be logged; give the token as a secret with --git-token"}},
		{"publish: no sources", func() error {
			_, err := m.Publish(ctx, "ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, "staging", "", "", "", "", nil, nil)
			return err
		}, []string{"auth-server has no source: give its checkout (--auth-server-source DIR)", "portal-client has no source"}},
		{"publish: the examples for production", func() error {
			_, err := m.Publish(ctx, "ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, catalog.Names(), "", nil, nil, nil, "production", "", "", "", "", nil, nil)
			return err
		}, []string{"--example auth-server: the examples are never built for production"}},
		{"publish: a source for a service not published", func() error {
			_, err := m.Publish(ctx, "ghcr.io/krgeobuk", "v1", []string{"auth-server"}, d, d, nil, nil, nil, nil, nil, "", nil, nil, nil, "staging", "", "", "", "", nil, nil)
			return err
		}, []string{"--authz-server-source: authz-server is not being built (--service auth-server)"}},
		{"publish: an unknown service's git ref", func() error {
			_, err := m.Publish(ctx, "ghcr.io/krgeobuk", "v1", nil, d, d, d, d, []string{"billing=https://github.com/krgeobuk/billing#main"}, nil, nil, "", nil, nil, nil, "staging", "", "", "", "", nil, nil)
			return err
		}, []string{`--git billing=…: unknown service "billing"`}},
		{"deploy: no images and no sources", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", nil, "ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, []string{"deploy staging: refused", "sources: auth-server has no source: give its checkout (--auth-server-source DIR) or a git ref (--git auth-server=URL#REF)"}},
		{"deploy: the examples for staging", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", nil, "ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, catalog.Names(), "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, []string{"--example auth-server: the examples are never built for staging"}},
		{"deploy: one example among real sources for production", func() error {
			_, err := m.Deploy(ctx, "production", kubeconfig, "apps", nil, "ghcr.io/krgeobuk", "v1", nil, d, d, d, nil, nil, nil, []string{"portal-client"}, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, []string{"--example portal-client: the examples are never built for production"}},
		{"deploy: images and sources", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", []string{"auth-server=ghcr.io/krgeobuk/auth-server:1"}, "", "", nil, d, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, []string{"--image deploys given images; --registry, --tag and the services' sources are for building them, not both"}},
		{"integration-test: the example for staging", func() error {
			_, err := m.IntegrationTest(ctx, "auth-server", nil, "", nil, true, "staging", "", "", "", "")
			return err
		}, []string{"--example auth-server: the examples are never built for staging"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recordFrom(t)
			err := tt.call()
			require.Error(t, err)
			for _, w := range tt.wantErr {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), "ghp_leaked999")
			require.Empty(t, fake.Queries(), "no query may be sent for a bad source")
		})
	}
}

func publishQueries() []fakesession.Query {
	var out []fakesession.Query
	for _, q := range fake.Queries() {
		if q.Leaf().Field == "publish" {
			out = append(out, q)
		}
	}
	return out
}

// serviceOf reads the service from a publish query's address.
func serviceOf(t *testing.T, q fakesession.Query) string {
	t.Helper()
	addr := fmt.Sprint(q.Leaf().Args["address"])
	svc := addr[strings.LastIndex(addr, "/")+1 : strings.LastIndex(addr, ":")]
	require.Contains(t, catalog.Names(), svc, addr)
	return svc
}
