package main

// The CI wrappers (GitHub Actions workflows, the service repositories'
// workflow template, the Jenkinsfile) read as a user's `dagger call`s: every
// call names a real function and real flags, and no call can build an
// example app for staging or production: none asks for an example, none
// hands this repository's tree as a service's source, every apps deploy
// builds from the service repositories or deploys given images.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// daggerCall is one `dagger call <function> …` of a wrapper, its flags with
// array and variable expansions spliced in.
type daggerCall struct {
	where    string
	function string
	args     []string
	// checkouts maps a checkout path of the job to the repository checked
	// out there ("" for the workflow's own repository).
	checkouts map[string]string
	// selfIsService: the workflow runs in a service repository (the
	// template), not in this one.
	selfIsService bool
}

func TestWrappersNeverBuildAnExampleForStagingOrProduction(t *testing.T) {
	fns := moduleFunctions(t)
	calls := wrapperCalls(t)
	var deploys, builds int
	for _, c := range calls {
		t.Run(c.where+" "+c.function, func(t *testing.T) {
			flags, ok := fns[c.function]
			require.True(t, ok, "%s: dagger call %s: no such function", c.where, c.function)
			for i, a := range c.args {
				if !strings.HasPrefix(a, "--") {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				require.NotEqual(t, "example", name, "%s: a wrapper never asks for the examples", c.where)
				if name == "$SERVICE-source" {
					for _, svc := range catalog.Names() {
						require.Contains(t, flags, svc+"-source", "%s: --%s-source", c.where, svc)
					}
				} else {
					require.Contains(t, flags, name, "%s: dagger call %s has no flag --%s", c.where, c.function, name)
				}
				if strings.HasSuffix(name, "-source") && name != "source-url" || name == "source" {
					require.Less(t, i+1, len(c.args), "%s: %s needs a value", c.where, a)
					checkSourceDir(t, c, c.args[i+1])
				}
				if name == "git" {
					require.Less(t, i+1, len(c.args))
					require.NotContains(t, c.args[i+1], "krgeobuk-infra", "%s: --git names a service repository", c.where)
					require.Regexp(t, `^"?[^=]+=https://github\.com/krgeobuk/`, c.args[i+1], "%s: --git service=URL#REF of a krgeobuk repository", c.where)
				}
			}
			for _, a := range c.args {
				require.NotContains(t, a, "examples/", "%s: this repository's examples are never a wrapper's source", c.where)
			}
			switch c.function {
			case "deploy":
				deploys++
				if !has(c.args, "--stack", "monitoring") {
					require.True(t, hasFlag(c.args, "image") || (hasFlag(c.args, "registry") && hasSourceFlag(c.args)),
						"%s: an apps deploy gives images or builds from the services' sources: %v", c.where, c.args)
				}
			case "promote":
				// Production deploys what staging verified, copied by digest: nothing is built.
				deploys++
				require.False(t, hasSourceFlag(c.args), "%s: promote builds nothing: %v", c.where, c.args)
			case "build", "publish", "integration-test":
				builds++
				require.True(t, hasSourceFlag(c.args), "%s: %s names the service's source: %v", c.where, c.function, c.args)
			}
		})
	}
	require.GreaterOrEqual(t, deploys, 4, "the staging, production (promote), monitoring and Jenkins deploys were found")
	require.GreaterOrEqual(t, builds, 3, "the service template's integration-test, build and publish were found")
}

// checkSourceDir: a directory handed as a service's source is a checkout of
// a service repository, never this repository's tree (whose examples it
// holds).
func checkSourceDir(t *testing.T, c daggerCall, dir string) {
	t.Helper()
	dir = strings.Trim(dir, `"'`)
	clean := filepath.Clean(dir)
	repo, ok := c.checkouts[clean]
	require.True(t, ok, "%s: source %q is no checkout of the job (checkouts: %v)", c.where, dir, c.checkouts)
	if repo == "" {
		require.True(t, c.selfIsService, "%s: source %q is this repository's own checkout", c.where, dir)
		return
	}
	require.Contains(t, catalog.Names(), repo[strings.LastIndex(repo, "/")+1:], "%s: source %q checks out %s, not a service", c.where, dir, repo)
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

func has(args []string, flag, value string) bool {
	for i, a := range args {
		if a == flag && i+1 < len(args) && strings.Trim(args[i+1], `"'`) == value {
			return true
		}
	}
	return false
}

func hasSourceFlag(args []string) bool {
	for _, a := range args {
		if a == "--git" || a == "--source" || (strings.HasSuffix(a, "-source") && a != "--source-url") {
			return true
		}
	}
	return false
}

// moduleFunctions reads the module's functions and their flags from ci/*.go
// as `dagger call` names them: methods of *Krgeobuk, arguments in kebab case.
func moduleFunctions(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, ".gen.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || !fn.Name.IsExported() {
				continue
			}
			star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
			if !ok || star.X.(*ast.Ident).Name != "Krgeobuk" {
				continue
			}
			var flags []string
			for _, p := range fn.Type.Params.List {
				for _, n := range p.Names {
					if n.Name != "ctx" {
						flags = append(flags, kebab(n.Name))
					}
				}
			}
			out[kebab(fn.Name.Name)] = flags
		}
	}
	require.Contains(t, out, "deploy")
	require.Contains(t, out["deploy"], "auth-server-source")
	return out
}

// kebab is the CLI's flag spelling of a Go name: a run of capitals is one
// word (sourceURL → source-url, kubeAPI → kube-api).
func kebab(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prevLower := !unicode.IsUpper(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || nextLower {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

type workflow struct {
	Jobs map[string]struct {
		Steps []struct {
			Uses string            `json:"uses"`
			Run  string            `json:"run"`
			With map[string]string `json:"with"`
		} `json:"steps"`
	} `json:"jobs"`
}

// wrapperCalls finds every dagger call of the workflows, the template and
// the Jenkinsfile.
func wrapperCalls(t *testing.T) []daggerCall {
	t.Helper()
	var out []daggerCall
	workflows, err := filepath.Glob("../.github/workflows/*.yml")
	require.NoError(t, err)
	templates, err := filepath.Glob("../.github/workflow-templates/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, workflows)
	require.NotEmpty(t, templates)
	for _, path := range append(workflows, templates...) {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var wf workflow
		require.NoError(t, yaml.Unmarshal(data, &wf), path)
		for job, j := range wf.Jobs {
			checkouts := map[string]string{}
			for _, s := range j.Steps {
				if strings.HasPrefix(s.Uses, "actions/checkout@") {
					checkouts[filepath.Clean(orDefault(s.With["path"], "."))] = s.With["repository"]
				}
			}
			for i, s := range j.Steps {
				where := filepath.Base(path) + " " + job + " step " + string(rune('0'+i))
				script := s.Run
				if strings.HasPrefix(s.Uses, "dagger/dagger-for-github@") && s.With["verb"] != "" {
					script = "dagger " + s.With["verb"] + " " + s.With["args"]
				}
				for _, c := range daggerCalls(t, where, script) {
					c.checkouts, c.selfIsService = checkouts, strings.Contains(path, "workflow-templates")
					out = append(out, c)
				}
			}
		}
	}
	jenkins, err := os.ReadFile("jenkins/Jenkinsfile")
	require.NoError(t, err)
	blocks := regexp.MustCompile(`(?s)sh\s*(?:'''(.*?)'''|'([^'\n]*)')`).FindAllStringSubmatch(string(jenkins), -1)
	require.NotEmpty(t, blocks)
	for i, b := range blocks {
		out = append(out, daggerCalls(t, "Jenkinsfile sh "+string(rune('0'+i)), b[1]+b[2])...)
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

var (
	arrayAssign = regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_]*)\+?=\((.*)\)\s*$`)
	arrayUse    = regexp.MustCompile(`^"?\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}"?$`)
	varAssign   = regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"`)
	varUse      = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)
)

// daggerCalls reads the `dagger … call <function> flags…` lines of a shell
// script; "${arr[@]}" is replaced by every word the script puts in arr, and
// an unquoted $var by every word of its assignments (how the Jenkinsfile
// composes flags), so conditional flags count too.
func daggerCalls(t *testing.T, where, script string) []daggerCall {
	script = strings.ReplaceAll(script, "\\\n", " ")
	arrays, vars := map[string][]string{}, map[string][]string{}
	for _, m := range arrayAssign.FindAllStringSubmatch(script, -1) {
		arrays[m[1]] = append(arrays[m[1]], words(m[2])...)
	}
	for _, m := range varAssign.FindAllStringSubmatch(script, -1) {
		for _, w := range words(m[2]) {
			if w != "$"+m[1] {
				vars[m[1]] = append(vars[m[1]], w)
			}
		}
	}
	var out []daggerCall
	for _, line := range strings.Split(script, "\n") {
		ws := words(line)
		for i := 0; i+1 < len(ws); i++ {
			if ws[i] != "dagger" {
				continue
			}
			j := i + 1
			for j < len(ws) && ws[j] != "call" {
				j++
			}
			if j+1 >= len(ws) {
				break
			}
			var args []string
			for _, w := range ws[j+2:] {
				if w == "|" || w == "&&" || w == ";" {
					break
				}
				if m := arrayUse.FindStringSubmatch(w); m != nil {
					args = append(args, arrays[m[1]]...)
					continue
				}
				if m := varUse.FindStringSubmatch(w); m != nil && vars[m[1]] != nil {
					args = append(args, vars[m[1]]...)
					continue
				}
				args = append(args, w)
			}
			out = append(out, daggerCall{where: where, function: ws[j+1], args: args})
			break
		}
	}
	return out
}

// words splits a shell line into words, keeping quoted words whole (quotes
// dropped) and dropping comments.
func words(line string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == '#' && !inWord:
			return out
		case unicode.IsSpace(r):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// The reader above must see what it checks: a wrapper that asks for an
// example, builds this repository's tree, or deploys with neither images
// nor sources is caught.
func TestWrapperReaderCatchesExamples(t *testing.T) {
	for in, want := range map[string]string{"sourceURL": "source-url", "kubeAPI": "kube-api", "authServerSource": "auth-server-source", "IntegrationTest": "integration-test"} {
		require.Equal(t, want, kebab(in))
	}
	bad := []string{
		"dagger call deploy --env staging --registry ghcr.io/krgeobuk --tag v1 --example auth-server",
		"args=(--env production --registry ghcr.io/krgeobuk)\nargs+=(--example auth-server)\ndagger call deploy \"${args[@]}\"",
		"what=\"--registry ghcr.io/krgeobuk\"\nwhat=\"$what --example auth-server\"\ndagger call deploy --env \"$ENVIRONMENT\" $what",
	}
	for _, script := range bad {
		calls := daggerCalls(t, "test", script)
		require.Len(t, calls, 1, script)
		require.True(t, hasFlag(calls[0].args, "example"), "the reader sees --example in:\n%s\n(got %v)", script, calls[0].args)
	}
	calls := daggerCalls(t, "test", "dagger -m ./krgeobuk-infra call publish --service \"$SERVICE\" \"--$SERVICE-source\" ./service # a comment --example")
	require.Equal(t, []string{"--service", "$SERVICE", "--$SERVICE-source", "./service"}, calls[0].args)
	require.Equal(t, "publish", calls[0].function)
	require.Equal(t, "--auth-server-source", build.DirectoryFlag("auth-server"), "the template's --$SERVICE-source is the module's flag")
}
