package main

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/request"
)

// krgeobukCLI builds the CLI of the root module (the other front door).
func krgeobukCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "krgeobuk")
	cmd := exec.Command("go", "build", "-o", bin, "./pipelines/cmd/krgeobuk")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build the CLI: %s", out)
	return bin
}

// Both front doors turn the same bad input into the same refused report:
// the CLI prints it and exits 1, the module's function fails with it after
// the line "<command> <env>: refused". Both go through pipelines/request;
// this proves neither adds checks or words of its own.
func TestBothDoorsRefuseBadInputAlike(t *testing.T) {
	cli := krgeobukCLI(t)
	ctx := context.Background()
	m := module()
	const kubeconfig = "apiVersion: v1\nkind: Config\n"
	kc := dag.SetSecret("kubeconfig", kubeconfig)
	dir := t.TempDir()
	kcFile, valuesFile := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "values.yaml")
	require.NoError(t, os.WriteFile(kcFile, []byte(kubeconfig), 0o600))
	require.NoError(t, os.WriteFile(valuesFile, []byte("- replicas: 3\n"), 0o600))
	values := dag.Directory().WithNewFile("values.yaml", "- replicas: 3\n").File("values.yaml")
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, []byte("not a certificate\n"), 0o600))
	ca := dag.Directory().WithNewFile("ca.pem", "not a certificate\n").File("ca.pem")
	digest := "auth-server=ghcr.io/krgeobuk/auth-server@sha256:" + strings.Repeat("a", 64)

	tests := []struct {
		name   string
		cli    []string
		module func() (string, error)
		want   string
	}{
		{"unknown environment", []string{"status", "--env", "qa", "--kubeconfig", kcFile},
			func() (string, error) { return m.Status(ctx, "qa", kc, "apps", nil, "table") }, `environment "qa": unknown`},
		{"bad image pair", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", "auth-server"},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{"auth-server"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, `--image "auth-server": want service=repository@sha256:...`},
		{"duplicate service", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--image", digest},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest, digest}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, "--image: service auth-server given twice"},
		{"bad format", []string{"history", "--env", "staging", "--kubeconfig", kcFile, "--format", "yaml"},
			func() (string, error) { return m.History(ctx, "staging", kc, "apps", nil, "yaml") }, `--format "yaml": want one of table, markdown, json`},
		{"values not a mapping", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--values", valuesFile},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, values, false, nil, "", "table", nil, nil)
			}, "--values: not a YAML mapping of chart values"},
		{"user without password", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--username", "ci-bot"},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "ci-bot", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, "give both --username and --password, or neither"},
		{"registry CA that is not PEM", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--registry-ca", caFile},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, ca, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, "--registry-ca: no PEM certificate in it"},
		{"negative revision", []string{"rollback", "--env", "production", "--kubeconfig", kcFile, "--revision", "-1"},
			func() (string, error) {
				return m.Rollback(ctx, "production", kc, "apps", -1, false, nil, false, nil, "table")
			}, "--revision -1: revisions start at 1"},
		{"missing kubeconfig", []string{"status", "--env", "staging", "--format", "markdown"},
			func() (string, error) { return m.Status(ctx, "staging", nil, "apps", nil, "markdown") }, "no kubeconfig: --kubeconfig is required"},
		{"unknown stack", []string{"deploy", "--env", "staging", "--stack", "logging", "--kubeconfig", kcFile},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "logging", nil, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, `--stack "logging": want one of apps, monitoring`},
		{"monitoring image pair without a component", []string{"deploy", "--env", "production", "--stack", "monitoring", "--kubeconfig", kcFile, "--image", "quay.io/prometheus/prometheus:v3.15.1"},
			func() (string, error) {
				return m.Deploy(ctx, "production", kc, "monitoring", []string{"quay.io/prometheus/prometheus:v3.15.1"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, `--image "quay.io/prometheus/prometheus:v3.15.1": want service=repository@sha256:...`},
		{"monitoring rollback to a negative revision", []string{"rollback", "--env", "staging", "--stack", "monitoring", "--kubeconfig", kcFile, "--revision", "-2"},
			func() (string, error) {
				return m.Rollback(ctx, "staging", kc, "monitoring", -2, false, nil, false, nil, "table")
			},
			"--revision -2: revisions start at 1"},
		{"bad readiness URL on deploy", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--readiness-url", "auth-server"},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, []string{"auth-server"}, "", "table", nil, nil)
			}, `--readiness-url "auth-server": want service=URL`},
		{"prometheus URL with credentials on deploy", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--prometheus-url", "http://ci:hunter2@prometheus:9090"},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "http://ci:hunter2@prometheus:9090", "table", nil, nil)
			}, "--prometheus-url: credentials do not belong in a flag"},
		{"bad readiness URL on rollback", []string{"rollback", "--env", "staging", "--kubeconfig", kcFile, "--readiness-url", "=http://x"},
			func() (string, error) {
				return m.Rollback(ctx, "staging", kc, "apps", 0, false, nil, false, []string{"=http://x"}, "table")
			}, `--readiness-url "=http://x": want service=URL`},
		{"a partial deploy without the named service's image", []string{"deploy", "--env", "staging", "--kubeconfig", kcFile, "--image", digest, "--service", "authz-server"},
			func() (string, error) {
				return m.Deploy(ctx, "staging", kc, "apps", []string{digest}, "", "", []string{"authz-server"}, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			}, "--service authz-server: no --image given for it"},
		{"monitoring status in an environment that does not place it", []string{"status", "--env", "qa", "--stack", "monitoring", "--kubeconfig", kcFile},
			func() (string, error) { return m.Status(ctx, "qa", kc, "monitoring", nil, "table") }, `environment "qa": unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(cli, tt.cli...)
			cmd.Env = append(os.Environ(), "KUBECONFIG=")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			var exit *exec.ExitError
			require.True(t, errors.As(cmd.Run(), &exit), "the CLI fails; stderr: %s", stderr.String())
			require.Equal(t, 1, exit.ExitCode())
			require.Empty(t, stderr.String())
			require.Contains(t, stdout.String(), "Refused before anything changed: "+tt.want)

			out, err := tt.module()
			require.Error(t, err)
			require.Empty(t, out)
			headline, report, ok := strings.Cut(err.Error(), "\n")
			require.True(t, ok)
			require.Equal(t, tt.cli[0]+" "+flagValue(tt.cli, "--env")+": refused", headline)
			require.Equal(t, stdout.String(), report, "the same report on both doors")
		})
	}
}

// Both doors take the arguments pipelines/request declares once
// (request.Shared) under those very names: the CLI's flags (from -h) and the
// module's function arguments (its Go parameters, as dagger call spells
// them in kebab case).
func TestBothDoorsTakeTheSharedArgumentNames(t *testing.T) {
	cli := krgeobukCLI(t)
	params := moduleParameters(t)
	for _, cmd := range slices.Sorted(maps.Keys(request.Shared)) {
		t.Run(cmd, func(t *testing.T) {
			var out bytes.Buffer
			c := exec.Command(cli, cmd, "-h")
			c.Stdout, c.Stderr = &out, &out
			require.NoError(t, c.Run(), out.String())
			flags := map[string]bool{}
			for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(out.String(), -1) {
				flags[m[1]] = true
			}
			fn := strings.ToUpper(cmd[:1]) + cmd[1:]
			require.NotEmpty(t, params[fn], "the module has a %s function", fn)
			for _, name := range request.Shared[cmd] {
				require.True(t, flags[name], "krgeobuk %s takes --%s", cmd, name)
				require.Contains(t, params[fn], name, "dagger call %s takes --%s", kebab(fn), name)
			}
		})
	}
}

// moduleParameters reads the module's functions (methods of *Krgeobuk in
// this package) and their argument names as dagger call spells them.
func moduleParameters(t *testing.T) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	out := map[string][]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "dagger.gen.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || !fn.Name.IsExported() {
				continue
			}
			if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); !ok || star.X.(*ast.Ident).Name != "Krgeobuk" {
				continue
			}
			for _, p := range fn.Type.Params.List {
				for _, n := range p.Names {
					if n.Name != "ctx" {
						out[fn.Name.Name] = append(out[fn.Name.Name], kebab(n.Name))
					}
				}
			}
		}
	}
	return out
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
