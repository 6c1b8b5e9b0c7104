package realnode_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
)

const leftoversName = "leftovers"

// hostState is what a node could leave on the host.
type hostState struct {
	Mounts    []string // mount points of this process's mount namespace
	Cgroups   []string // this test's node's cgroups (other packages' nodes may come and go meanwhile)
	Links     []string // network devices of the host's namespace
	Ruleset   string   // nft list ruleset of the host's namespace
	Processes []string // this test process's children
}

func snapshot(t *testing.T) hostState {
	t.Helper()
	var s hostState
	data, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			s.Mounts = append(s.Mounts, f[4])
		}
	}
	data, err = os.ReadFile("/proc/self/cgroup")
	require.NoError(t, err)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || f[1] == "" {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(strings.Split(f[1], ",")[0], "name="), f[2])
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), "krgeobuk-realnode-"+leftoversName+"-") {
				s.Cgroups = append(s.Cgroups, filepath.Join(dir, e.Name()))
			}
		}
	}
	out, err := exec.Command("ip", "-o", "link").Output()
	require.NoError(t, err)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.Links = append(s.Links, strings.TrimSuffix(f[1], ":"))
		}
	}
	out, err = exec.Command("nft", "list", "ruleset").Output()
	require.NoError(t, err)
	s.Ruleset = string(out)
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		st := string(b)
		if f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:]); len(f) > 1 && f[1] == self {
			s.Processes = append(s.Processes, filepath.Base(filepath.Dir(d))+" "+st[strings.IndexByte(st, '(')+1:strings.LastIndexByte(st, ')')])
		}
	}
	slices.Sort(s.Mounts)
	slices.Sort(s.Cgroups)
	slices.Sort(s.Links)
	slices.Sort(s.Processes)
	return s
}

// TestStopLeavesNothing boots a node of its own, runs a pod on it (so
// runc, a shim, a pod veth, nftables rules and pod cgroups exist), stops
// it, and compares the host before and after: no process, mount, cgroup,
// network device or nftables rule remains, nor the cluster directory.
func TestStopLeavesNothing(t *testing.T) {
	// Start sweeps what killed test processes left; sweep first so that
	// the comparison is about this node only.
	require.NoError(t, realnode.SweepStale(""))
	before := snapshot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	var progress bytes.Buffer
	c, err := realnode.Start(ctx, realnode.Options{Name: leftoversName, Log: io.MultiWriter(os.Stderr, &progress)})
	require.NoError(t, err)
	t.Logf("node Ready (Start returned) %s after Start", time.Since(began).Round(10*time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pause", Namespace: "default"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers:                    []corev1.Container{{Name: "pause", Image: c.PauseImage(), SecurityContext: restricted()}},
		},
	}
	_, err = client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		p, err := client.CoreV1().Pods("default").Get(ctx, "pause", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return errNotRunning(p)
		}
		return nil
	}))
	during := snapshot(t)
	require.NotEqual(t, before.Cgroups, during.Cgroups, "the node's cgroups exist while it runs (the snapshot sees them)")

	// Secrets stay out of the progress lines and the node's own log: no
	// client key (the admin key is in the kubeconfig) and no
	// ServiceAccount token (a JWT, "eyJ..."; the policy agent has one).
	nodeLog, err := os.ReadFile(filepath.Join(c.Dir(), "logs", "node.log"))
	require.NoError(t, err)
	require.Contains(t, string(c.Kubeconfig()), "client-key-data")
	for name, text := range map[string]string{"progress": progress.String(), "node.log": string(nodeLog)} {
		require.Contains(t, text, "kube-network-policies done", "%s holds the boot's progress", name)
		require.NotContains(t, text, "PRIVATE KEY", name)
		require.NotContains(t, text, "eyJ", name)
	}

	dir := c.Dir()
	stopBegan := time.Now()
	stopped = true
	require.NoError(t, c.Stop())
	t.Logf("teardown (Stop) took %s", time.Since(stopBegan).Round(10*time.Millisecond))
	after := snapshot(t)
	require.Equal(t, before, after)
	require.NoDirExists(t, dir)
}

type podNotRunning struct{ phase corev1.PodPhase }

func (e podNotRunning) Error() string { return "pod phase " + string(e.phase) }

func errNotRunning(p *corev1.Pod) error { return podNotRunning{p.Status.Phase} }
