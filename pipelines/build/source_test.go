package build

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSources(t *testing.T) {
	const authGit = "auth-server=https://github.com/krgeobuk/auth-server#main"
	all := []string{"auth-server", "authz-server", "auth-client", "portal-client"}
	tests := []struct {
		name    string
		args    SourceArgs
		want    map[string]Source
		wantErr []string
	}{
		{
			name: "a checkout per service",
			args: SourceArgs{Env: "staging", Directories: all},
			want: map[string]Source{"auth-server": {Kind: FromDirectory}, "authz-server": {Kind: FromDirectory},
				"auth-client": {Kind: FromDirectory}, "portal-client": {Kind: FromDirectory}},
		},
		{
			name: "directories, git refs and examples mixed in development",
			args: SourceArgs{Env: "development", Directories: []string{"authz-server"}, Git: []string{authGit,
				"portal-client=git@github.com:krgeobuk/portal-client#v1.4.2"}, Examples: []string{"auth-client"}},
			want: map[string]Source{
				"auth-server":   {Kind: FromGit, URL: "https://github.com/krgeobuk/auth-server", Ref: "main"},
				"authz-server":  {Kind: FromDirectory},
				"auth-client":   {Kind: FromExample, Example: "examples/spa"},
				"portal-client": {Kind: FromGit, URL: "git@github.com:krgeobuk/portal-client", Ref: "v1.4.2"},
			},
		},
		{
			name: "only the named services need a source",
			args: SourceArgs{Env: "production", Services: []string{"authz-server"}, Git: []string{"authz-server=ssh://git@github.com/krgeobuk/authz-server.git#0123abcd"}},
			want: map[string]Source{"authz-server": {Kind: FromGit, URL: "ssh://git@github.com/krgeobuk/authz-server.git", Ref: "0123abcd"}},
		},
		{
			name: "an example for one service built on its own",
			args: SourceArgs{Env: "development", Services: []string{"auth-server"}, Examples: []string{"auth-server"}, One: true},
			want: map[string]Source{"auth-server": {Kind: FromExample, Example: "examples/auth-api"}},
		},
		{
			name: "nothing given: every service says what to pass",
			args: SourceArgs{Env: "staging"},
			wantErr: []string{
				"auth-server has no source: give its checkout (--auth-server-source DIR) or a git ref (--git auth-server=URL#REF)\n",
				"portal-client has no source: give its checkout (--portal-client-source DIR) or a git ref (--git portal-client=URL#REF)",
			},
		},
		{
			name:    "nothing given in development: the example is offered by name",
			args:    SourceArgs{Env: "development", Services: []string{"auth-client"}},
			wantErr: []string{"auth-client has no source: give its checkout (--auth-client-source DIR) or a git ref (--git auth-client=URL#REF), or --example auth-client to build this repository's example"},
		},
		{
			name:    "one service's own flags",
			args:    SourceArgs{Env: "production", Services: []string{"auth-server"}, One: true},
			wantErr: []string{"auth-server has no source: give its checkout (--source DIR) or a git ref (--git URL#REF)"},
		},
		{
			name:    "an example for staging",
			args:    SourceArgs{Env: "staging", Services: []string{"auth-server"}, Examples: []string{"auth-server"}},
			wantErr: []string{"--example auth-server: the examples are never built for staging (only for development); give the service's own source"},
		},
		{
			name:    "an example for production",
			args:    SourceArgs{Env: "production", Directories: all[1:], Examples: []string{"auth-server"}},
			wantErr: []string{"--example auth-server: the examples are never built for production"},
		},
		{
			name:    "an example for an environment added later",
			args:    SourceArgs{Env: "qa", Services: []string{"auth-client"}, Examples: []string{"auth-client"}},
			wantErr: []string{"never built for qa"},
		},
		{
			name:    "two sources for one service",
			args:    SourceArgs{Env: "development", Services: []string{"auth-server"}, Directories: []string{"auth-server"}, Git: []string{authGit}},
			wantErr: []string{"auth-server has two sources (--auth-server-source and --git " + authGit + "); give one"},
		},
		{
			name:    "a source for a service not being built",
			args:    SourceArgs{Env: "staging", Services: []string{"authz-server"}, Directories: []string{"authz-server"}, Git: []string{authGit}},
			wantErr: []string{"--git " + authGit + ": auth-server is not being built (--service authz-server); drop its source or add it to --service"},
		},
		{
			name:    "an unknown service's example",
			args:    SourceArgs{Env: "development", Examples: []string{"billing"}},
			wantErr: []string{`--example: unknown service "billing"`},
		},
		{
			name:    "an unknown service's git ref",
			args:    SourceArgs{Env: "staging", Git: []string{"billing=https://github.com/krgeobuk/billing#main"}},
			wantErr: []string{`--git billing=…: unknown service "billing"`},
		},
		{
			name:    "an unknown service to build",
			args:    SourceArgs{Env: "staging", Services: []string{"billing"}},
			wantErr: []string{`unknown service "billing"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sources(tt.args)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tt.wantErr {
					require.ErrorContains(t, err, w)
				}
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseGit(t *testing.T) {
	tests := []struct {
		spec    string
		want    Git
		wantErr string
	}{
		{spec: "https://github.com/krgeobuk/auth-server#main", want: Git{URL: "https://github.com/krgeobuk/auth-server", Ref: "main"}},
		{spec: "https://github.com/krgeobuk/auth-server.git#release/1.4", want: Git{URL: "https://github.com/krgeobuk/auth-server.git", Ref: "release/1.4"}},
		{spec: "ssh://git@github.com/krgeobuk/auth-server#0123abcdef", want: Git{URL: "ssh://git@github.com/krgeobuk/auth-server", Ref: "0123abcdef"}},
		{spec: "git@github.com:krgeobuk/auth-server.git#v2.0.0", want: Git{URL: "git@github.com:krgeobuk/auth-server.git", Ref: "v2.0.0"}},
		{spec: "https://github.com/krgeobuk/auth-server", wantErr: "want URL#REF"},
		{spec: "https://github.com/krgeobuk/auth-server#", wantErr: `ref "" is not a branch, tag or commit name`},
		{spec: "https://github.com/krgeobuk/auth-server#--upload-pack=x", wantErr: "is not a branch, tag or commit name"},
		{spec: "https://github.com/krgeobuk/auth-server#a..b", wantErr: "is not a branch, tag or commit name"},
		{spec: "http://github.com/krgeobuk/auth-server#main", wantErr: `scheme "http" is not allowed (want https or ssh)`},
		{spec: "file:///srv/auth-server#main", wantErr: "not a remote URL"},
		{spec: "../auth-server#main", wantErr: "a local checkout is a directory"},
		{spec: "https://github.com#main", wantErr: "want the repository's path"},
		{spec: "https://github.com/krgeobuk/auth-server?x=1#main", wantErr: "want the repository's path and no query"},
		{spec: "https://x-access-token:ghp_secret123@github.com/krgeobuk/auth-server#main", wantErr: "credentials in a git URL would be logged; give the token as a secret with --git-token"},
		{spec: "ssh://git:hunter22@github.com/krgeobuk/auth-server#main", wantErr: "a password in a git URL would be logged"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseGit(tt.spec)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "ghp_secret123", "a refusal never repeats a token")
				require.NotContains(t, err.Error(), "hunter22")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	_, _, err := ParseServiceGit("https://x-access-token:ghp_secret123@github.com/krgeobuk/auth-server#main")
	require.ErrorContains(t, err, `want service=URL#REF`)
	require.NotContains(t, err.Error(), "ghp_secret123", "not even when the service= part is missing")
	_, _, err = ParseServiceGit("auth-server=https://u:ghp_secret123@github.com/krgeobuk/auth-server#main")
	require.ErrorContains(t, err, "--git auth-server=…: \"https://[REDACTED]@github.com/krgeobuk/auth-server\": credentials")
	require.NotContains(t, err.Error(), "ghp_secret123")
}

func TestSourceLabels(t *testing.T) {
	given := Labels{Source: "https://github.com/krgeobuk/auth-server", Revision: "0123abc"}
	require.Equal(t, given, Source{Kind: FromDirectory}.Labels(given, ""), "a checkout carries the labels the caller gave")
	require.Equal(t, Labels{Source: DefaultSource, Revision: "0123abc", Example: "examples/spa"},
		Source{Kind: FromExample, Example: "examples/spa"}.Labels(given, ""), "an example names this repository and itself")
	commit := "89abcdef0123456789abcdef0123456789abcdef"
	require.Equal(t, Labels{Source: "https://github.com/krgeobuk/authz-server", Revision: commit},
		Source{Kind: FromGit, URL: "https://github.com/krgeobuk/authz-server.git", Ref: "main"}.Labels(given, commit),
		"a git source names its remote and the commit the engine resolved, not the caller's")
	require.Equal(t, Labels{Revision: commit}, Source{Kind: FromGit, URL: "git@github.com:krgeobuk/authz-server", Ref: "main"}.Labels(given, commit),
		"an SSH remote is no https:// source label")

	m, err := Labels{Source: DefaultSource, Example: "examples/auth-api"}.Map("auth-server")
	require.NoError(t, err)
	require.Equal(t, "examples/auth-api", m[ExampleLabel])
}

func TestExamplesOnlyForDevelopment(t *testing.T) {
	require.True(t, ExamplesAllowed("development"))
	for _, env := range []string{"staging", "production", "", "Development"} {
		require.False(t, ExamplesAllowed(env), env)
	}
}

// The examples a build may be asked for exist, with the files a build reads.
func TestExamplesExist(t *testing.T) {
	for kind, dir := range Examples {
		for _, f := range []string{"package.json", "package-lock.json"} {
			_, err := os.Stat(filepath.Join("..", "..", dir, f))
			require.NoError(t, err, "%s example: %s/%s", kind, dir, f)
		}
	}
}
