// Package binaries builds the programs the test clusters run from pinned tools
// modules under scripts/testenv, into a cache outside the repository keyed by
// version, and finds them again on later runs: the control plane of the
// simulated cluster (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl, kwok) and the programs of a real node (kubelet,
// kube-proxy, containerd and its runc shim, CoreDNS, kube-network-policies,
// pause).
package binaries

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
)

// Set holds absolute paths of every program a cluster needs.
type Set struct {
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kubectl               string
	Kwok                  string
	Kwokctl               string

	// The real node's programs. runc, the CNI plugins, nft, conntrack and
	// tini come from Debian (scripts/apt-packages.txt).
	Kubelet         string
	KubeProxy       string
	Containerd      string
	ContainerdShim  string // containerd-shim-runc-v2
	Ctr             string // containerd's client, for debugging a node
	CoreDNS         string
	NetworkPolicies string // kube-network-policies, patched (see knp.go)
	Pause           string // the pods' sandbox process
}

// Toolset is a set of programs built from one tools module, keyed by the
// version of one module. Its cache directory is <cache>/testenv/<Name>-<version>.
type Toolset struct {
	// Name prefixes the cache directory ("k8s", "etcd", "kwok", ...).
	Name string
	// Dir is the tools module, relative to the repository root.
	Dir string
	// Module is the required module whose version keys the cache.
	Module string
	// Version keys the cache of programs that are all the tools module's
	// own (Module empty); their source is part of the stamp anyway.
	Version string
	// Programs maps a binary name to the package it is built from.
	Programs map[string]string
	// LDFlags are added to -s -w, with {{version}} replaced by the version.
	LDFlags []string
	// Patch, when set, changes Module's source before the build (see Patch).
	Patch *Patch
}

// Toolsets lists every toolset. etcd and kwok have their own tools modules
// because their dependencies (etcd client libraries, gRPC, older k8s.io
// libraries) clash with those of k8s.io/kubernetes v1.37. Everything else
// shares scripts/testenv/tools, so that one set of dependency versions is
// compiled once into the Go build cache for all of them: the node's programs
// cost only their own packages once the control plane is built.
func Toolsets() []Toolset {
	k8sVersion := func(pkg string) []string {
		return []string{
			"-X", pkg + ".gitVersion={{version}}",
			"-X", pkg + ".gitMajor={{major}}",
			"-X", pkg + ".gitMinor={{minor}}",
			"-X", pkg + ".gitTreeState=clean",
		}
	}
	return []Toolset{
		{
			Name:   "k8s",
			Dir:    "scripts/testenv/tools",
			Module: "k8s.io/kubernetes",
			Programs: map[string]string{
				"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
				"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
				"kube-scheduler":          "k8s.io/kubernetes/cmd/kube-scheduler",
				"kubectl":                 "k8s.io/kubernetes/cmd/kubectl",
				"kubelet":                 "k8s.io/kubernetes/cmd/kubelet",
				"kube-proxy":              "k8s.io/kubernetes/cmd/kube-proxy",
			},
			// Without these the servers report v0.0.0-master, and Helm
			// refuses charts whose kubeVersion constraint needs a real one.
			LDFlags: append(k8sVersion("k8s.io/component-base/version"), k8sVersion("k8s.io/client-go/pkg/version")...),
		},
		{
			Name:     "etcd",
			Dir:      "scripts/testenv/etcd",
			Module:   "go.etcd.io/etcd/server/v3",
			Programs: map[string]string{"etcd": "go.etcd.io/etcd/server/v3"},
		},
		{
			Name:     "kwok",
			Dir:      "scripts/testenv/kwok",
			Module:   "sigs.k8s.io/kwok",
			Programs: map[string]string{"kwok": "sigs.k8s.io/kwok/cmd/kwok", "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl"},
		},
		{
			Name:   "containerd",
			Dir:    "scripts/testenv/tools",
			Module: "github.com/containerd/containerd/v2",
			Programs: map[string]string{
				"containerd":              "github.com/containerd/containerd/v2/cmd/containerd",
				"containerd-shim-runc-v2": "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
				"ctr":                     "github.com/containerd/containerd/v2/cmd/ctr",
			},
			LDFlags: []string{"-X", "github.com/containerd/containerd/v2/version.Version={{version}}"},
		},
		{
			Name:     "coredns",
			Dir:      "scripts/testenv/tools",
			Module:   "github.com/coredns/coredns",
			Programs: map[string]string{"coredns": toolsModule + "/coredns"},
		},
		{
			Name:     "knp",
			Dir:      "scripts/testenv/tools",
			Module:   "sigs.k8s.io/kube-network-policies",
			Programs: map[string]string{"kube-network-policies": "sigs.k8s.io/kube-network-policies/cmd"},
			Patch:    &knpPatch,
		},
		{
			Name:     "pause",
			Dir:      "scripts/testenv/tools",
			Version:  "v1",
			Programs: map[string]string{"pause": toolsModule + "/pause"},
		},
	}
}

// toolsModule is the module path of scripts/testenv/tools.
const toolsModule = rootModule + "/scripts/testenv/tools"

// Options tells Ensure where things are.
type Options struct {
	// RepoRoot is the krgeobuk-infra checkout; found from the working
	// directory when empty.
	RepoRoot string
	// CacheDir is the cache root; $KRGEOBUK_CACHE or ~/.cache/krgeobuk when empty.
	CacheDir string
	// Go is the go command; "go" when empty.
	Go string
	// Log receives one line per decision and a progress line every
	// minute of a build; nil discards them.
	Log io.Writer
	// BuildHint is appended to the line announcing a build.
	BuildHint string
	// Toolsets to ensure; Toolsets() when nil. Set only has fields for
	// the programs of Toolsets().
	Toolsets []Toolset
}

// Ensure returns the programs of every toolset, building the ones whose
// cache entry is missing or was built from a different tools go.mod. A warm
// cache costs a few file reads. Concurrent callers (test packages run in
// parallel) build each toolset once: the others wait on a file lock.
func Ensure(ctx context.Context, opts Options) (Set, error) {
	if err := opts.fill(); err != nil {
		return Set{}, err
	}
	paths := map[string]string{}
	toolsets := opts.Toolsets
	if toolsets == nil {
		toolsets = Toolsets()
	}
	for _, ts := range toolsets {
		bin, err := ensureToolset(ctx, opts, ts)
		if err != nil {
			return Set{}, fmt.Errorf("testenv toolset %s: %w", ts.Name, err)
		}
		for name := range ts.Programs {
			paths[name] = filepath.Join(bin, name)
		}
	}
	return setOf(paths), nil
}

// Cached returns the programs of every toolset when the cache already holds
// them, and never builds: an error names what is missing and `make testenv`.
func Cached(opts Options) (Set, error) {
	if err := opts.fill(); err != nil {
		return Set{}, err
	}
	toolsets := opts.Toolsets
	if toolsets == nil {
		toolsets = Toolsets()
	}
	paths := map[string]string{}
	for _, ts := range toolsets {
		version, want, err := identify(opts.RepoRoot, ts)
		if err != nil {
			return Set{}, err
		}
		dir := filepath.Join(opts.CacheDir, "testenv", ts.Name+"-"+version)
		if !fresh(dir, ts, want) {
			return Set{}, fmt.Errorf("testenv toolset %s %s is not built in %s: run make testenv", ts.Name, version, opts.CacheDir)
		}
		for name := range ts.Programs {
			paths[name] = filepath.Join(dir, "bin", name)
		}
	}
	return setOf(paths), nil
}

func setOf(paths map[string]string) Set {
	return Set{
		Etcd:                  paths["etcd"],
		KubeAPIServer:         paths["kube-apiserver"],
		KubeControllerManager: paths["kube-controller-manager"],
		KubeScheduler:         paths["kube-scheduler"],
		Kubectl:               paths["kubectl"],
		Kwok:                  paths["kwok"],
		Kwokctl:               paths["kwokctl"],
		Kubelet:               paths["kubelet"],
		KubeProxy:             paths["kube-proxy"],
		Containerd:            paths["containerd"],
		ContainerdShim:        paths["containerd-shim-runc-v2"],
		Ctr:                   paths["ctr"],
		CoreDNS:               paths["coredns"],
		NetworkPolicies:       paths["kube-network-policies"],
		Pause:                 paths["pause"],
	}
}

// ByName maps every program's name (its file name in the cache) to its path.
func (s Set) ByName() map[string]string {
	return map[string]string{
		"etcd": s.Etcd, "kube-apiserver": s.KubeAPIServer, "kube-controller-manager": s.KubeControllerManager,
		"kube-scheduler": s.KubeScheduler, "kubectl": s.Kubectl, "kwok": s.Kwok, "kwokctl": s.Kwokctl,
		"kubelet": s.Kubelet, "kube-proxy": s.KubeProxy, "containerd": s.Containerd,
		"containerd-shim-runc-v2": s.ContainerdShim, "ctr": s.Ctr, "coredns": s.CoreDNS,
		"kube-network-policies": s.NetworkPolicies, "pause": s.Pause,
	}
}

// All returns every program's path, sorted by program name.
func (s Set) All() []string {
	m := s.ByName()
	out := make([]string, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[name])
	}
	return out
}

func (o *Options) fill() error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir()
	}
	if o.RepoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("find repository root: %w", err)
		}
		root, err := FindRepoRoot(wd)
		if err != nil {
			return err
		}
		o.RepoRoot = root
	}
	return nil
}

// DefaultCacheDir is $KRGEOBUK_CACHE, else ~/.cache/krgeobuk.
func DefaultCacheDir() string {
	if d := os.Getenv("KRGEOBUK_CACHE"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "krgeobuk")
	}
	return filepath.Join(os.TempDir(), "krgeobuk-cache")
}

const rootModule = "github.com/krgeobuk/krgeobuk-infra"

// FindRepoRoot walks up from dir to the directory whose go.mod declares the
// krgeobuk-infra module.
func FindRepoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(data) == rootModule {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s above %s: run from inside the krgeobuk-infra checkout", rootModule, dir)
		}
	}
}

func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// RequiredVersion returns the version go.mod requires of module, from either
// a single-line require or a require block.
func RequiredVersion(gomod []byte, module string) (string, error) {
	inBlock := false
	for line := range strings.Lines(string(gomod)) {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "require" && len(f) == 2 && f[1] == "(":
			inBlock = true
		case inBlock && f[0] == ")":
			inBlock = false
		case inBlock && len(f) == 2 && f[0] == module:
			return f[1], nil
		case !inBlock && len(f) == 3 && f[0] == "require" && f[1] == module:
			return f[2], nil
		}
	}
	return "", fmt.Errorf("go.mod does not require %s", module)
}

func ensureToolset(ctx context.Context, opts Options, ts Toolset) (string, error) {
	modDir := filepath.Join(opts.RepoRoot, ts.Dir)
	version, want, err := identify(opts.RepoRoot, ts)
	if err != nil {
		return "", err
	}
	key := ts.Name + "-" + version
	base := filepath.Join(opts.CacheDir, "testenv")
	dir := filepath.Join(base, key)
	bin := filepath.Join(dir, "bin")
	if fresh(dir, ts, want) {
		return bin, nil
	}

	if err := Preflight(opts, ts).Check(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(base, key+".lock"), opts.Log, key)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Someone else may have built it while we waited for the lock.
	if fresh(dir, ts, want) {
		return bin, nil
	}
	if err := build(ctx, opts, ts, version, modDir, dir); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "stamp"), []byte(want), 0o644); err != nil {
		return "", fmt.Errorf("write stamp: %w", err)
	}
	return bin, nil
}

// diskEstimate is roughly what building a toolset writes: its binaries (and a
// temporary copy while they are installed) in the cache, and its compiled
// packages in the Go build cache. Estimates, not measurements of a limit.
var diskEstimate = map[string]struct{ cache, gocache uint64 }{
	"k8s":        {cache: 3 * preflight.GiB / 2, gocache: 5 * preflight.GiB},
	"etcd":       {cache: preflight.GiB / 4, gocache: 1 * preflight.GiB},
	"kwok":       {cache: preflight.GiB / 4, gocache: 1 * preflight.GiB},
	"containerd": {cache: preflight.GiB / 2, gocache: 1 * preflight.GiB},
	"coredns":    {cache: preflight.GiB / 4, gocache: 1 * preflight.GiB},
	"knp":        {cache: preflight.GiB / 4, gocache: 1 * preflight.GiB},
	"pause":      {cache: preflight.GiB / 16, gocache: preflight.GiB / 16},
}

// Preflight is what building ts needs: the go command, a writable cache
// folder and free disk there and in the Go build cache.
func Preflight(opts Options, ts Toolset) preflight.Step {
	est, ok := diskEstimate[ts.Name]
	if !ok {
		est = struct{ cache, gocache uint64 }{preflight.GiB / 4, preflight.GiB}
	}
	base := filepath.Join(opts.CacheDir, "testenv")
	return preflight.Step{
		Name:  "testenv build (" + ts.Name + ")",
		Rerun: "make testenv",
		Tools: map[string]string{opts.Go: ""},
		Dirs: append([]preflight.Dir{{Path: base, Need: est.cache, What: "the " + ts.Name + " binaries"}},
			preflight.GoCacheDir(est.gocache)...),
	}
}

// identify returns the version that keys ts's cache entry and the stamp the
// entry must carry to be fresh.
func identify(repoRoot string, ts Toolset) (version, want string, err error) {
	modDir := filepath.Join(repoRoot, ts.Dir)
	gomod, err := os.ReadFile(filepath.Join(modDir, "go.mod"))
	if err != nil {
		return "", "", fmt.Errorf("read tools module: %w", err)
	}
	switch {
	case ts.Module != "":
		version, err = RequiredVersion(gomod, ts.Module)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", filepath.Join(ts.Dir, "go.mod"), err)
		}
	case ts.Version != "":
		version = ts.Version
	default:
		return "", "", fmt.Errorf("toolset %s names neither a module nor a version", ts.Name)
	}
	own, err := ownSources(modDir, modulePath(gomod), ts)
	if err != nil {
		return "", "", err
	}
	return version, stamp(ts, version, gomod, own), nil
}

// stamp records what a cache entry was built from; a different go.mod (a
// bumped dependency), different link flags, a changed patch or a changed
// main of the tools module invalidate it.
func stamp(ts Toolset, version string, gomod []byte, own string) string {
	sum := sha256.Sum256(gomod)
	s := fmt.Sprintf("%s %s\ngo.mod sha256 %s\nldflags %s\n", ts.Module, version, hex.EncodeToString(sum[:]), strings.Join(ldflags(ts, version), " "))
	if ts.Patch != nil {
		s += "patch sha256 " + ts.Patch.Hash() + "\n"
	}
	if own != "" {
		s += "own sources sha256 " + own + "\n"
	}
	return s
}

// ownSources hashes the Go files of the programs that are packages of the
// tools module itself (CoreDNS's main, pause); "" when there are none.
func ownSources(modDir, modPath string, ts Toolset) (string, error) {
	h := sha256.New()
	n := 0
	for _, name := range slices.Sorted(maps.Keys(ts.Programs)) {
		rel, ok := strings.CutPrefix(ts.Programs[name], modPath+"/")
		if !ok || modPath == "" {
			continue
		}
		files, err := filepath.Glob(filepath.Join(modDir, filepath.FromSlash(rel), "*.go"))
		if err != nil {
			return "", fmt.Errorf("sources of %s: %w", name, err)
		}
		files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
		if len(files) == 0 {
			return "", fmt.Errorf("toolset %s: no Go files for %s in %s", ts.Name, name, filepath.Join(modDir, filepath.FromSlash(rel)))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("sources of %s: %w", name, err)
			}
			fmt.Fprintf(h, "%s/%s %d\n", rel, filepath.Base(f), len(b))
			h.Write(b)
			n++
		}
	}
	if n == 0 {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fresh(dir string, ts Toolset, want string) bool {
	got, err := os.ReadFile(filepath.Join(dir, "stamp"))
	if err != nil || string(got) != want {
		return false
	}
	for name := range ts.Programs {
		fi, err := os.Stat(filepath.Join(dir, "bin", name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

func ldflags(ts Toolset, version string) []string {
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	r := strings.NewReplacer("{{version}}", version, "{{major}}", major, "{{minor}}", minor)
	out := []string{"-s", "-w"}
	for _, f := range ts.LDFlags {
		out = append(out, r.Replace(f))
	}
	return out
}

// lock takes an exclusive flock, polling so that the wait stays cancellable.
func lock(ctx context.Context, path string, log io.Writer, key string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open build lock: %w", err)
	}
	told := false
	err = retry.Do(ctx, retry.NewConstant(2*time.Second), func(context.Context) error {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if !told {
				fmt.Fprintf(log, "testenv: waiting for another process that is building %s (lock %s)\n", key, path)
				told = true
			}
			return retry.RetryableError(err)
		}
		return err
	})
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("build lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

func build(ctx context.Context, opts Options, ts Toolset, version, modDir, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(dir, "bin.tmp-")
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	names := make([]string, 0, len(ts.Programs))
	pkgs := make([]string, 0, len(ts.Programs))
	for _, name := range slices.Sorted(maps.Keys(ts.Programs)) {
		names = append(names, name)
		pkgs = append(pkgs, ts.Programs[name])
	}
	out := tmp + string(filepath.Separator)
	if len(pkgs) == 1 {
		// A module-root main package would be named after its last path
		// element ("v3"); name the file explicitly.
		out = filepath.Join(tmp, names[0])
	}
	args := append([]string{"build", "-trimpath", "-ldflags=" + strings.Join(ldflags(ts, version), " "), "-o", out}, pkgs...)
	logPath := filepath.Join(dir, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create build log: %w", err)
	}
	defer func() { _ = logFile.Close() }()

	work := "off"
	if ts.Patch != nil {
		fmt.Fprintf(opts.Log, "testenv: patching %s %s: %s\n", ts.Module, version, ts.Patch.Why)
		w, cleanup, err := patchedWorkspace(ctx, opts, ts, version, modDir, dir)
		if err != nil {
			return fmt.Errorf("patch %s %s: %w", ts.Module, version, err)
		}
		defer cleanup()
		work = w
	}
	cmd := exec.CommandContext(ctx, opts.Go, args...)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK="+work, "GOFLAGS=-mod=readonly")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group, so a cancelled build takes its compilers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second

	what := ts.Module
	if what == "" {
		what = ts.Name
	}
	fmt.Fprintf(opts.Log, "testenv: building %s %s (%s) into %s; a cold build takes minutes (k8s: ~15 on 2 cores, the real node's programs ~6 more), compiled packages stay in GOCACHE if it is interrupted; log: %s%s\n",
		what, version, strings.Join(names, ", "), dir, logPath, opts.BuildHint)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start go build: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(opts.Log, "testenv: still building %s %s (%s elapsed)\n", ts.Name, version, time.Since(start).Round(time.Second))
			continue
		case err = <-done:
		}
		break
	}
	if err != nil {
		return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), ts.Dir, err, tail(logPath, 20))
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("go build produced no %s: %w", name, err)
		}
	}
	bin := filepath.Join(dir, "bin")
	if err := os.RemoveAll(bin); err != nil {
		return fmt.Errorf("replace %s: %w", bin, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("install %s: %w", bin, err)
	}
	fmt.Fprintf(opts.Log, "testenv: built %s %s in %s\n", ts.Name, version, time.Since(start).Round(time.Second))
	return nil
}

// patchedWorkspace copies ts.Module at version from the module cache into
// dir, applies ts.Patch to the copy, and writes a go.work that builds the
// tools module with the copy in place of the module. Every other module
// keeps the tools module's versions, so their compiled packages are shared.
// cleanup removes the copy and the go.work.
func patchedWorkspace(ctx context.Context, opts Options, ts Toolset, version, modDir, dir string) (work string, cleanup func(), err error) {
	gomod, err := os.ReadFile(filepath.Join(modDir, "go.mod"))
	if err != nil {
		return "", nil, fmt.Errorf("read tools module: %w", err)
	}
	goLine := goDirective(gomod)
	if goLine == "" {
		return "", nil, fmt.Errorf("%s has no go directive", filepath.Join(ts.Dir, "go.mod"))
	}
	dl := exec.CommandContext(ctx, opts.Go, "mod", "download", "-json", ts.Module+"@"+version)
	dl.Dir = modDir
	dl.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	dl.Stderr = &stderr
	out, err := dl.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go mod download %s@%s: %w: %s", ts.Module, version, err, strings.TrimSpace(stderr.String()))
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", nil, fmt.Errorf("go mod download %s@%s: %w", ts.Module, version, err)
	}
	if m.Error != "" || m.Dir == "" {
		return "", nil, fmt.Errorf("go mod download %s@%s: %s", ts.Module, version, m.Error)
	}
	tmp, err := os.MkdirTemp(dir, "patched.tmp-")
	if err != nil {
		return "", nil, fmt.Errorf("create source copy dir: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	src := filepath.Join(tmp, "src")
	if err := os.CopyFS(src, os.DirFS(m.Dir)); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy %s: %w", m.Dir, err)
	}
	if err := ts.Patch.Apply(src); err != nil {
		cleanup()
		return "", nil, err
	}
	work = filepath.Join(tmp, "go.work")
	text := fmt.Sprintf("go %s\n\nuse %s\n\nreplace %s %s => %s\n", goLine, strconv.Quote(modDir), ts.Module, version, strconv.Quote(src))
	if err := os.WriteFile(work, []byte(text), 0o644); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("write go.work: %w", err)
	}
	return work, cleanup, nil
}

// goDirective returns the version of go.mod's go directive.
func goDirective(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	return ""
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
