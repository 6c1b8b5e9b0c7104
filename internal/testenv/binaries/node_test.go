package binaries

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
)

// The tests below run the real node's programs from the real cache. make
// test runs make testenv before go test, so a missing one is a failure, not a
// skip.
func builtSet(t *testing.T) Set {
	t.Helper()
	set, err := Cached(Options{})
	require.NoError(t, err, "these tests run the programs in the real cache (%s): run make testenv first (make test does)", DefaultCacheDir())
	return set
}

func toolsVersion(t *testing.T, module string) string {
	t.Helper()
	repo, err := FindRepoRoot(mustGetwd(t))
	require.NoError(t, err)
	gomod, err := os.ReadFile(filepath.Join(repo, "scripts", "testenv", "tools", "go.mod"))
	require.NoError(t, err)
	v, err := RequiredVersion(gomod, module)
	require.NoError(t, err)
	return v
}

func nodePrograms(set Set) map[string]string {
	return map[string]string{
		"kubelet": set.Kubelet, "kube-proxy": set.KubeProxy, "containerd": set.Containerd,
		"containerd-shim-runc-v2": set.ContainerdShim, "ctr": set.Ctr, "coredns": set.CoreDNS,
		"kube-network-policies": set.NetworkPolicies, "pause": set.Pause,
	}
}

// Every node program runs where no shared library is: pause alone in a
// one-layer image, the shim and containerd in the node's namespace.
func TestNodeProgramsAreStaticExecutables(t *testing.T) {
	for name, path := range nodePrograms(builtSet(t)) {
		t.Run(name, func(t *testing.T) {
			f, err := elf.Open(path)
			require.NoError(t, err)
			defer func() { _ = f.Close() }()
			for _, p := range f.Progs {
				require.NotEqual(t, elf.PT_INTERP, p.Type, "%s asks for a dynamic loader", path)
			}
		})
	}
}

// The cached kube-network-policies is the patched one: its rules are built
// with the xtables queue target (TestKNPPatch checks what that target is).
// An unpatched binary enforces nothing on this kernel, silently.
func TestNetworkPoliciesBinaryIsPatched(t *testing.T) {
	bin, err := os.ReadFile(builtSet(t).NetworkPolicies)
	require.NoError(t, err)
	require.True(t, bytes.Contains(bin, []byte("sigs.k8s.io/kube-network-policies/pkg/networkpolicy.xtNFQueue")),
		"%s was built without the NFQUEUE patch", builtSet(t).NetworkPolicies)
}

// Each program reports the version it was built from: the kubelet's is what
// the Node object shows, containerd's what the kubelet's runtime check reads.
func TestNodeProgramsReportTheirVersions(t *testing.T) {
	set := builtSet(t)
	k8s := toolsVersion(t, "k8s.io/kubernetes")
	containerd := toolsVersion(t, "github.com/containerd/containerd/v2")
	coredns := toolsVersion(t, "github.com/coredns/coredns")
	cases := []struct {
		name string
		path string
		args []string
		want string
	}{
		{"kubelet", set.Kubelet, []string{"--version"}, "Kubernetes " + k8s},
		{"kube-proxy", set.KubeProxy, []string{"--version"}, "Kubernetes " + k8s},
		{"containerd", set.Containerd, []string{"--version"}, "containerd github.com/containerd/containerd/v2 " + containerd},
		{"containerd-shim-runc-v2", set.ContainerdShim, []string{"-v"}, "Version:  " + containerd},
		{"ctr", set.Ctr, []string{"--version"}, "ctr github.com/containerd/containerd/v2 " + containerd},
		{"coredns", set.CoreDNS, []string{"-version"}, "CoreDNS-" + strings.TrimPrefix(coredns, "v")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, c.path, c.args...).CombinedOutput()
			require.NoError(t, err, "%s %v:\n%s", c.path, c.args, out)
			require.Contains(t, string(out), c.want)
		})
	}
}

// The slim CoreDNS serves exactly the plugins a cluster's DNS needs: a
// Corefile using all seven starts and turns healthy, and one using any other
// plugin is refused. (Five more register themselves because ours import them,
// debug, dnstap, metadata, prometheus and transfer, but have no directive, so
// no Corefile can use them.)
func TestCoreDNSHasExactlyItsPlugins(t *testing.T) {
	set := builtSet(t)
	ours := []string{"cache", "errors", "forward", "health", "kubernetes", "loop", "ready"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, set.CoreDNS, "-plugins").CombinedOutput()
	require.NoError(t, err, "%s", out)
	registered := strings.Fields(string(out))
	require.Subset(t, registered, ours)
	require.Less(t, len(registered), 20, "upstream's main registers about sixty plugins; ours only a few:\n%s", out)

	ports := freePorts(t, 3)
	dir := t.TempDir()
	corefile := func(extra string) string {
		p := filepath.Join(dir, "Corefile")
		text := fmt.Sprintf(`.:%d {
%s    errors
    health 127.0.0.1:%d
    ready 127.0.0.1:%d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint http://127.0.0.1:1
    }
    forward . 127.0.0.1:1
    cache 30
    loop
}
`, ports[0], extra, ports[1], ports[2])
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	others := []string{"bind 127.0.0.1", "log", "rewrite name a b", "hosts", "prometheus :9153", "transfer", "metadata", "debug", "dnstap /tmp/x.sock"}
	for _, other := range others {
		name, _, _ := strings.Cut(other, " ")
		t.Run("refuses "+name, func(t *testing.T) {
			out, err := exec.CommandContext(ctx, set.CoreDNS, "-conf", corefile("    "+other+"\n")).CombinedOutput()
			require.Error(t, err, "a Corefile with %s must be refused:\n%s", name, out)
			require.Contains(t, string(out), "Unknown directive '"+name+"'")
		})
	}

	t.Run("starts with all of its own", func(t *testing.T) {
		conf := corefile("")
		cmd := exec.CommandContext(ctx, set.CoreDNS, "-conf", conf)
		logPath := filepath.Join(dir, "coredns.log")
		logFile, err := os.Create(logPath)
		require.NoError(t, err)
		defer func() { _ = logFile.Close() }()
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Kill()
			<-exited
		}()
		health := fmt.Sprintf("http://127.0.0.1:%d/health", ports[1])
		err = retry.Do(ctx, retry.WithMaxDuration(60*time.Second, retry.NewConstant(200*time.Millisecond)), func(ctx context.Context) error {
			select {
			case err := <-exited:
				exited <- err
				return fmt.Errorf("coredns exited: %v", err)
			default:
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return retry.RetryableError(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return retry.RetryableError(fmt.Errorf("%s: %s", health, resp.Status))
			}
			return nil
		})
		log, _ := os.ReadFile(logPath)
		require.NoError(t, err, "coredns with every plugin did not become healthy; log:\n%s", log)
	})
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		require.NoError(t, l.Close())
	}
	return ports
}

// pause holds a pod's namespaces until it is told to stop, and then exits
// cleanly, as pid 1 of the pod's sandbox would be stopped by the runtime.
func TestPauseRunsUntilStopped(t *testing.T) {
	set := builtSet(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.Command(set.Pause)
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			defer func() { _ = cmd.Process.Kill() }()
			// Signal only once pause says it handles the signal: before that
			// Go's runtime would end it by the signal, which is not what is
			// under test (and the kernel's SigCgt mask cannot tell the two apart).
			announced := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(stderr).ReadString('\n')
				announced <- line
			}()
			select {
			case line := <-announced:
				require.Contains(t, line, "holding the namespaces", "pause's first line")
			case <-ctx.Done():
				t.Fatal("pause said nothing within 30s")
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			require.NoError(t, cmd.Process.Signal(sig))
			select {
			case err := <-exited:
				require.NoError(t, err, "pause exits 0 on %s", sig)
			case <-ctx.Done():
				t.Fatalf("pause did not exit within 30s of %s", sig)
			}
		})
	}
}
