package binaries

import (
	"bufio"
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRequiredVersion(t *testing.T) {
	cases := []struct {
		name, gomod, module, want, wantErr string
	}{
		{"single-line require", "module x\n\nrequire k8s.io/kubernetes v1.37.2\n", "k8s.io/kubernetes", "v1.37.2", ""},
		{"require block with indirect comments", "module x\nrequire (\n\tgo.etcd.io/etcd/server/v3 v3.6.16\n\tgolang.org/x/sys v0.1.0 // indirect\n)\n", "go.etcd.io/etcd/server/v3", "v3.6.16", ""},
		{"a longer module path is not a match", "module x\nrequire (\n\tsigs.k8s.io/kwok/extra v1.0.0\n\tsigs.k8s.io/kwok v0.8.0\n)\n", "sigs.k8s.io/kwok", "v0.8.0", ""},
		{"a commented-out require does not count", "module x\n// require sigs.k8s.io/kwok v0.7.0\n", "sigs.k8s.io/kwok", "", "does not require sigs.k8s.io/kwok"},
		{"missing", "module x\n", "k8s.io/kubernetes", "", "does not require k8s.io/kubernetes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RequiredVersion([]byte(tc.gomod), tc.module)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// The pinned tools modules must build what Toolsets says from the versions
// the documentation promises.
func TestToolsetsMatchTheirToolsModules(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	root, err := FindRepoRoot(wd)
	require.NoError(t, err)
	want := map[string]string{
		"k8s": "v1.37.2", "etcd": "v3.6.16", "kwok": "v0.8.0",
		"containerd": "v2.4.2", "coredns": "v1.15.0", "knp": "v0.8.0", "pause": "v1",
	}
	var names []string
	for _, ts := range Toolsets() {
		names = append(names, ts.Name)
		v, _, err := identify(root, ts)
		require.NoError(t, err, "toolset %s", ts.Name)
		require.Equal(t, want[ts.Name], v, "toolset %s pins %s", ts.Name, ts.Module)
		gomod, err := os.ReadFile(filepath.Join(root, ts.Dir, "go.mod"))
		require.NoError(t, err)
		tools, err := os.ReadFile(filepath.Join(root, ts.Dir, "tools.go"))
		require.NoError(t, err, "toolset %s", ts.Name)
		for name, pkg := range ts.Programs {
			if rel, own := strings.CutPrefix(pkg, modulePath(gomod)+"/"); own {
				require.DirExists(t, filepath.Join(root, ts.Dir, rel), "toolset %s: the main of %s", ts.Name, name)
				continue
			}
			require.Contains(t, string(tools), `"`+pkg+`"`, "toolset %s: tools.go does not pin the package of %s", ts.Name, name)
		}
	}
	require.ElementsMatch(t, slices.Collect(maps.Keys(want)), names)
}

// Every program of every toolset has a field in Set, and no two share a name.
func TestSetHasAFieldForEveryProgram(t *testing.T) {
	paths := map[string]string{}
	for _, ts := range Toolsets() {
		for name := range ts.Programs {
			require.NotContains(t, paths, name, "two toolsets build %s", name)
			paths[name] = "/cache/" + name
		}
	}
	set := setOf(paths)
	require.Len(t, set.ByName(), len(paths))
	for name, p := range set.ByName() {
		require.Equal(t, "/cache/"+name, p, "Set's field for %s", name)
	}
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(set.All()))), len(paths))
}

// A main of the tools module itself (CoreDNS's, pause) is part of the stamp:
// editing it rebuilds its toolset, and only its own.
func TestOwnSourcesInvalidateTheirToolsetOnly(t *testing.T) {
	root, ts := tinyTools(t, "x")
	ts.Programs["hello"] = "example.com/tools/hello"
	other := Toolset{Name: "other", Dir: "tools", Version: "v1", Programs: map[string]string{"hi": "example.com/tools/hi"}}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "tools", "hi"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "tools", "hi", "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644))
	_, helloBefore, err := identify(root, ts)
	require.NoError(t, err)
	_, hiBefore, err := identify(root, other)
	require.NoError(t, err)
	f, err := os.OpenFile(filepath.Join(root, "tools", "hello", "main.go"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("// edited\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, helloAfter, err := identify(root, ts)
	require.NoError(t, err)
	_, hiAfter, err := identify(root, other)
	require.NoError(t, err)
	require.NotEqual(t, helloBefore, helloAfter)
	require.Equal(t, hiBefore, hiAfter)

	_, _, err = identify(root, Toolset{Name: "nothing", Dir: "tools"})
	require.ErrorContains(t, err, "toolset nothing names neither a module nor a version")
}

// tinyTools writes a tools module (offline-buildable: its one dependency is
// one the root module already has) whose program prints its greeting.
func tinyTools(t *testing.T, greeting string) (root string, ts Toolset) {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	repo, err := FindRepoRoot(wd)
	require.NoError(t, err)
	sums, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)
	var sum bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "github.com/sethvargo/go-retry v0.5.0") {
			sum.WriteString(sc.Text() + "\n")
		}
	}

	root = t.TempDir()
	dir := filepath.Join(root, "tools")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "hello"), 0o755))
	files := map[string]string{
		"go.mod": "module example.com/tools\n\ngo 1.26.1\n\nrequire github.com/sethvargo/go-retry v0.5.0\n",
		"go.sum": sum.String(),
		"hello/main.go": `package main

import (
	"fmt"
	"time"

	"github.com/sethvargo/go-retry"
)

func main() { _ = retry.NewConstant(time.Second); fmt.Println("` + greeting + `") }
`,
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return root, Toolset{
		Name:     "tiny",
		Dir:      "tools",
		Module:   "github.com/sethvargo/go-retry",
		Programs: map[string]string{"hello": "example.com/tools/hello"},
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEnsureBuildsOnceThenReusesTheCache(t *testing.T) {
	t.Setenv("GOPROXY", "off") // the build must not need the network
	root, ts := tinyTools(t, "hello from the cache")
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ensure := func(log *lockedBuffer) error {
		_, err := Ensure(ctx, Options{RepoRoot: root, CacheDir: cache, Log: log, Toolsets: []Toolset{ts}})
		return err
	}
	bin := filepath.Join(cache, "testenv", "tiny-v0.5.0", "bin", "hello")

	var cold lockedBuffer
	require.NoError(t, ensure(&cold))
	require.Contains(t, cold.String(), "testenv: building github.com/sethvargo/go-retry v0.5.0 (hello)")
	out, err := exec.Command(bin).Output()
	require.NoError(t, err)
	require.Equal(t, "hello from the cache\n", string(out))
	built, err := os.Stat(bin)
	require.NoError(t, err)

	var warm lockedBuffer
	require.NoError(t, ensure(&warm))
	require.Empty(t, warm.String(), "a warm cache must not build")
	again, err := os.Stat(bin)
	require.NoError(t, err)
	require.Equal(t, built.ModTime(), again.ModTime())

	// A changed go.mod (a bumped dependency, say) invalidates the entry;
	// two callers at once build it once.
	gomod := filepath.Join(root, "tools", "go.mod")
	f, err := os.OpenFile(gomod, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("// changed\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	var logs [2]lockedBuffer
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range logs {
		wg.Go(func() { errs[i] = ensure(&logs[i]) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	both := logs[0].String() + logs[1].String()
	require.Equal(t, 1, strings.Count(both, "testenv: building "), "want exactly one build, logs:\n%s", both)
}

func TestEnsureReportsABrokenBuildWithItsOutput(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	root, ts := tinyTools(t, `broken"`) // an unterminated string literal
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := Ensure(ctx, Options{RepoRoot: root, CacheDir: cache, Toolsets: []Toolset{ts}})
	require.ErrorContains(t, err, "testenv toolset tiny")
	require.ErrorContains(t, err, "hello/main.go", "the error must show the compiler's complaint")
	_, statErr := os.Stat(filepath.Join(cache, "testenv", "tiny-v0.5.0", "stamp"))
	require.True(t, os.IsNotExist(statErr), "a failed build must not be stamped")
}

func TestEnsureNamesAToolsModuleThatDoesNotPinItsModule(t *testing.T) {
	root, ts := tinyTools(t, "x")
	ts.Module = "example.com/not-required"
	_, err := Ensure(context.Background(), Options{RepoRoot: root, CacheDir: t.TempDir(), Toolsets: []Toolset{ts}})
	require.ErrorContains(t, err, "tools/go.mod: go.mod does not require example.com/not-required")
}

func TestEnsureChecksItsPrerequisitesBeforeBuilding(t *testing.T) {
	root, ts := tinyTools(t, "x")
	blocker := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	cases := []struct {
		name  string
		opts  Options
		wants []string
	}{
		{"no go", Options{CacheDir: t.TempDir(), Go: "/nonexistent/go"}, []string{"/nonexistent/go is not on PATH"}},
		{"cache under a file", Options{CacheDir: filepath.Join(blocker, "cache")}, []string{"cannot create " + filepath.Join(blocker, "cache", "testenv")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.RepoRoot, c.opts.Toolsets = root, []Toolset{ts}
			var log lockedBuffer
			c.opts.Log = &log
			_, err := Ensure(context.Background(), c.opts)
			require.ErrorContains(t, err, "testenv build (tiny): cannot start on this machine")
			require.ErrorContains(t, err, "rerun just this step: make testenv")
			for _, w := range c.wants {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, log.String(), "testenv: building", "nothing is built when a prerequisite is missing")
		})
	}
}

func TestCachedNeverBuilds(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	root, ts := tinyTools(t, "x")
	cache := t.TempDir()
	opts := Options{RepoRoot: root, CacheDir: cache, Toolsets: []Toolset{ts}}
	_, err := Cached(opts)
	require.ErrorContains(t, err, "testenv toolset tiny v0.5.0 is not built in "+cache+": run make testenv")
	entries, err := os.ReadDir(cache)
	require.NoError(t, err)
	require.Empty(t, entries, "Cached writes nothing")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err = Ensure(ctx, opts)
	require.NoError(t, err)
	_, err = Cached(opts)
	require.NoError(t, err)
}
