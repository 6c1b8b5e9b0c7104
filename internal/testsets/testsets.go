// Package testsets splits the Go suite into what any container can run and what needs the
// machine: a test belongs to the container set unless it reaches, through the functions of its
// own package, one of the helpers that start real components (a simulated cluster, database
// servers, Prometheus, an S3 server in another network namespace, images built on the host).
// `make unit-container` (part of `dagger call check`) runs the container set; `make test` runs
// everything.
package testsets

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Module is the root module's path.
const Module = "github.com/krgeobuk/krgeobuk-infra"

// Heavy names the helper packages whose use keeps a test out of the container set, and why.
var Heavy = map[string]string{
	Module + "/internal/testenv":       "the simulated cluster: kube-apiserver, controllers and kwok built into $KRGEOBUK_CACHE/testenv (make testenv)",
	Module + "/internal/deploytest":    "deploys to the simulated cluster (internal/testenv)",
	Module + "/internal/dbtest":        "MariaDB and Redis server processes from Debian packages (make deps), some in their own network namespace",
	Module + "/internal/promtest":      "Prometheus, Alertmanager and exporters built into $KRGEOBUK_CACHE/monitoring (make monitoring-tools)",
	Module + "/internal/offhosttest":   "an S3 server built into $KRGEOBUK_CACHE/versitygw and an off-host network namespace (unshare)",
	Module + "/internal/registrytest":  "the distribution registry built into $KRGEOBUK_CACHE/registry (make registry-server)",
	Module + "/internal/serverproc":    "starts server processes (MariaDB, Redis, Prometheus, versitygw, the registry)",
	Module + "/internal/exampleimages": "builds the example images on the host with npm and the e2e base images",
}

// Package is one package's tests split in two.
type Package struct {
	ImportPath string
	// Light are the tests (and examples) the container set runs; Heavy the others, each with the
	// helper it reaches.
	Light []string
	Heavy map[string]string
}

// Files are one package's Go files as `go list` names them.
type Files struct {
	ImportPath string
	Dir        string
	GoFiles    []string // the package's own files
	TestFiles  []string // _test.go files of the package itself
	XTestFiles []string // _test.go files of package <name>_test
}

// Split classifies every test of a package. A package that is itself a heavy helper has only
// heavy tests. A TestMain that reaches a heavy helper makes every test of its package heavy.
func Split(f Files) (Package, error) {
	p := Package{ImportPath: f.ImportPath, Heavy: map[string]string{}}
	// One graph for the package and its external tests: an external test's use of the package
	// under test is followed into it. Names shared by both only widen what counts as heavy.
	var files []string
	for _, group := range [][]string{f.GoFiles, f.TestFiles, f.XTestFiles} {
		files = append(files, group...)
	}
	g, err := parseFiles(f.Dir, f.ImportPath, files)
	if err != nil {
		return p, err
	}
	mainWhy := g.reaches("TestMain")
	for _, name := range g.tests {
		why := g.reaches(name)
		if why == "" {
			why = mainWhy
		}
		if _, ok := Heavy[f.ImportPath]; ok {
			why = f.ImportPath
		}
		if why != "" {
			p.Heavy[name] = why
		} else {
			p.Light = append(p.Light, name)
		}
	}
	sort.Strings(p.Light)
	return p, nil
}

// SkipPattern is the -skip regexp that leaves out p's heavy tests ("" when there are none).
func (p Package) SkipPattern() string {
	if len(p.Heavy) == 0 {
		return ""
	}
	names := make([]string, 0, len(p.Heavy))
	for n := range p.Heavy {
		names = append(names, regexp.QuoteMeta(n))
	}
	sort.Strings(names)
	return "^(" + strings.Join(names, "|") + ")$"
}

// graph is the functions of one package (its test files included) and what each refers to.
type graph struct {
	tests []string            // Test*, Example* functions, in source order
	calls map[string][]string // function or method name -> same-package names it uses
	heavy map[string]string   // function or method name -> the heavy helper it uses directly
}

func parseFiles(dir, self string, names []string) (*graph, error) {
	g := &graph{calls: map[string][]string{}, heavy: map[string]string{}}
	fset := token.NewFileSet()
	for _, n := range names {
		file, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("testsets: %w", err)
		}
		heavyAlias := map[string]string{}
		selfAlias := ""
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			alias := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				alias = imp.Name.Name
			}
			if _, ok := Heavy[path]; ok {
				heavyAlias[alias] = path
			} else if path == self {
				selfAlias = alias
			}
		}
		for _, decl := range file.Decls {
			// package-level variables and types count as the function "" (always reached)
			name := ""
			var body ast.Node = decl
			if fd, ok := decl.(*ast.FuncDecl); ok {
				name = fd.Name.Name
				if fd.Recv == nil && isTest(fd) {
					g.tests = append(g.tests, name)
				}
			}
			ast.Inspect(body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.SelectorExpr:
					if id, ok := x.X.(*ast.Ident); ok {
						if path, ok := heavyAlias[id.Name]; ok {
							g.heavy[name] = path
							return false
						}
						if selfAlias != "" && id.Name == selfAlias {
							g.calls[name] = append(g.calls[name], x.Sel.Name)
							return false
						}
					}
					// a method or field of a local type: follow any local function of that name
					g.calls[name] = append(g.calls[name], x.Sel.Name)
				case *ast.Ident:
					g.calls[name] = append(g.calls[name], x.Name)
				}
				return true
			})
		}
	}
	return g, nil
}

func isTest(fd *ast.FuncDecl) bool {
	n := fd.Name.Name
	return (strings.HasPrefix(n, "Test") && n != "TestMain") || strings.HasPrefix(n, "Example")
}

// reaches returns the heavy helper name reaches through same-package functions (and the
// package-level declarations everything may use), or "".
func (g *graph) reaches(name string) string {
	seen := map[string]bool{}
	queue := []string{name, ""}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		if path, ok := g.heavy[n]; ok {
			return path
		}
		for _, c := range g.calls[n] {
			if _, ok := g.calls[c]; ok || g.heavy[c] != "" {
				queue = append(queue, c)
			}
		}
	}
	return ""
}
