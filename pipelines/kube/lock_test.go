package kube_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

// thisHost returns the holder annotations a lock taken by this process
// records (host, host identity, pid, process start).
func thisHost(ctx context.Context, t *testing.T, kc *kube.Client) map[string]string {
	t.Helper()
	l, err := kube.AcquireLock(ctx, kc, kc.Namespace, "probe", "probe", 5*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err)
	ann := lease(ctx, t, kc, "probe").Annotations
	require.NoError(t, l.Release(ctx))
	require.NotEmpty(t, ann[kube.AnnotationHolderHostID], "this Linux host records its identity")
	require.NotContains(t, lease(ctx, t, kc, "probe").Annotations, kube.AnnotationHolderPID, "release forgets the process")
	return ann
}

// exitedPID returns the PID of a process that has exited and been reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// plant makes name's Lease look held by identity, renewed just now for a
// minute, with the given holder annotations: a deploy that is alive as far
// as its lease says.
func plant(ctx context.Context, t *testing.T, kc *kube.Client, name, identity string, ann map[string]string) {
	t.Helper()
	secs := int32(60)
	now := metav1.NewMicroTime(time.Now())
	_, err := kc.Typed.CoordinationV1().Leases(kc.Namespace).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &identity, LeaseDurationSeconds: &secs, RenewTime: &now, AcquireTime: &now},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestLockJudgesAHolderByItsProcess: a deploy killed with SIGKILL never
// releases its lock. On the same host (same boot and PID namespace, not
// merely the same hostname) its exited process makes the lock stale at once;
// elsewhere only the lease's expiry can tell, and the refusal says when that
// is and how to take over deliberately.
func TestLockJudgesAHolderByItsProcess(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	here := thisHost(ctx, t, kc)
	dead := strconv.Itoa(exitedPID(t))
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name     string
		ann      map[string]string
		takeOver bool
		why      string // "" means refused
	}{
		{name: "exited process on this host", ann: with(here, kube.AnnotationHolderPID, dead),
			why: "its process " + dead + " on this host (" + here[kube.AnnotationHolderHost] + ") has exited"},
		{name: "pid reused by another process", ann: with(here, kube.AnnotationHolderPID, self, kube.AnnotationHolderStart, "1"),
			why: "the PID now belongs to another process"},
		{name: "running process on this host", ann: here},
		{name: "another host", ann: with(here, kube.AnnotationHolderHost, "ci-runner-7", kube.AnnotationHolderHostID, "0f0f/pid:[1]", kube.AnnotationHolderPID, dead)},
		{name: "same hostname, another boot", ann: with(here, kube.AnnotationHolderHostID, "0f0f/pid:[1]", kube.AnnotationHolderPID, dead)},
		{name: "no process recorded", ann: nil},
		{name: "deliberate takeover", ann: with(here, kube.AnnotationHolderHost, "ci-runner-7", kube.AnnotationHolderHostID, "0f0f/pid:[1]"),
			takeOver: true, why: "taken over deliberately while its lease was live until"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "deploy-" + strconv.Itoa(i)
			plant(ctx, t, kc, name, "alice (killed deploy)", tt.ann)
			l, err := kube.AcquireLock(ctx, kc, kc.Namespace, name, "bob", 20*time.Second, kube.Budget(5*time.Second),
				kube.LockOptions{TakeOver: tt.takeOver})
			if tt.why == "" {
				var held *kube.HeldError
				require.ErrorAs(t, err, &held)
				msg := err.Error()
				require.Contains(t, msg, `deploy lock `+kc.Namespace+`/`+name+` is held by "alice (killed deploy)"`)
				require.Contains(t, msg, "another deploy is running. It last renewed the lock at ")
				require.Regexp(t, `counts as stale at \S+Z \(in (59s|1m0s)\)`, msg)
				require.Contains(t, msg, "take the lock over deliberately: pass --take-over-lock")
				if tt.ann != nil {
					require.Contains(t, msg, "(process "+tt.ann[kube.AnnotationHolderPID]+" on "+tt.ann[kube.AnnotationHolderHost]+")")
				}
				require.Equal(t, "alice (killed deploy)", *lease(ctx, t, kc, name).Spec.HolderIdentity, "the holder keeps its lock")
				return
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, l.Release(ctx)) }()
			require.NotNil(t, l.TookOver)
			require.Equal(t, "alice (killed deploy)", l.TookOver.Identity)
			require.Contains(t, l.TookOverWhy, tt.why)
			got := lease(ctx, t, kc, name)
			require.Equal(t, "bob", *got.Spec.HolderIdentity)
			require.Equal(t, self, got.Annotations[kube.AnnotationHolderPID], "the new holder records its own process")
		})
	}
}

// TestDeliberateTakeoverStopsTheOldHolder: the displaced holder, if it
// still runs, finds out at its next renewal and stops.
func TestDeliberateTakeoverStopsTheOldHolder(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	a, err := kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "alice", 3*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err)
	_, err = kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "bob", 3*time.Second, kube.Budget(5*time.Second))
	require.Error(t, err, "alice's process runs: bob is refused without the option")
	b, err := kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "bob", 3*time.Second, kube.Budget(5*time.Second), kube.LockOptions{TakeOver: true})
	require.NoError(t, err)
	require.Equal(t, "alice", b.TookOver.Identity)
	select {
	case <-a.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the displaced holder did not notice")
	}
	require.ErrorContains(t, a.LostCause(), `held by "bob"`)
	require.NoError(t, a.Release(ctx))
	require.NoError(t, b.Release(ctx))
}

const (
	helperKubeconfig = "KRGEOBUK_LOCK_HELPER_KUBECONFIG"
	helperNamespace  = "KRGEOBUK_LOCK_HELPER_NAMESPACE"
)

// TestLockHelperProcess is not a test: TestKilledDeployDoesNotBlockTheNext
// runs it in a process of its own, which takes the lock, says so and waits
// to be killed.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv(helperKubeconfig)
	if path == "" {
		t.Skip("helper process of TestKilledDeployDoesNotBlockTheNext")
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	kc, err := kube.FromKubeconfig(data, os.Getenv(helperNamespace))
	require.NoError(t, err)
	_, err = kube.AcquireLock(context.Background(), kc, kc.Namespace, "deploy", "doomed-deploy", 20*time.Second, kube.Budget(10*time.Second))
	require.NoError(t, err)
	fmt.Println("HELD")
	// Bounded, should the test that kills it fail first.
	<-time.After(2 * time.Minute)
}

// TestKilledDeployDoesNotBlockTheNext is issue 12's case: a deploy killed
// with SIGKILL leaves its lock held and its lease live for the TTL. The next
// deploy on the same host sees the process is gone and takes over at once.
func TestKilledDeployDoesNotBlockTheNext(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	cfg := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(cfg, testenv.Shared(t).Kubeconfig(), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), helperKubeconfig+"="+cfg, helperNamespace+"="+kc.Namespace)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	held := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if s.Text() == "HELD" {
				held <- true
				break
			}
		}
		close(held)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-held:
		require.True(t, ok, "the helper exited without taking the lock")
	case <-time.After(time.Minute):
		t.Fatal("the helper did not take the lock within a minute")
	}
	_, err = kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "next-deploy", 20*time.Second, kube.Budget(5*time.Second))
	require.Error(t, err, "while the helper runs, its lock holds")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait() // reaped: its PID is gone
	l, err := kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "next-deploy", 20*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err, "taken over at once, not after the TTL")
	defer func() { require.NoError(t, l.Release(ctx)) }()
	require.Equal(t, "doomed-deploy", l.TookOver.Identity)
	require.True(t, time.Now().Before(l.TookOver.Expires), "the killed holder's lease had not expired yet")
	require.Contains(t, l.TookOverWhy, "its process "+strconv.Itoa(cmd.Process.Pid)+" on this host")
}
