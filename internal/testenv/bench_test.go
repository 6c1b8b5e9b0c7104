package testenv_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

// BenchmarkClusterStartStop compares the harness (our own child processes)
// with kwokctl's binary runtime on the same binaries, each measured from
// nothing to "API ready, default service account present, one node Ready"
// and back to nothing.
//
//	go test -run '^$' -bench ClusterStartStop -benchtime 3x ./internal/testenv/
func BenchmarkClusterStartStop(b *testing.B) {
	b.Run("testenv", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			c, err := testenv.Start(ctx, testenv.Options{Name: "bench", Nodes: 1, Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Stop(); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
	b.Run("kwokctl-binary-runtime", func(b *testing.B) {
		bins, err := binaries.Ensure(context.Background(), binaries.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			kwokctlCycle(ctx, b, bins, fmt.Sprintf("bench-%d", i))
			cancel()
		}
	})
}

func kwokctlCycle(ctx context.Context, b *testing.B, bins binaries.Set, name string) {
	work := b.TempDir()
	run := func(args ...string) {
		cmd := exec.CommandContext(ctx, bins.Kwokctl, args...)
		cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+work)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("kwokctl %v: %v\n%s", args, err, out)
		}
	}
	b.Cleanup(func() {
		cmd := exec.Command(bins.Kwokctl, "delete", "cluster", "--name", name)
		cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+work)
		_ = cmd.Run()
	})
	run("create", "cluster", "--name", name, "--runtime", "binary",
		"--kube-apiserver-binary", bins.KubeAPIServer,
		"--kube-controller-manager-binary", bins.KubeControllerManager,
		"--kube-scheduler-binary", bins.KubeScheduler,
		"--etcd-binary", bins.Etcd,
		"--kwok-controller-binary", bins.Kwok)
	data, err := os.ReadFile(filepath.Join(work, "clusters", name, "kubeconfig.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		b.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(rc)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-0", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}}}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	err = retry.Do(ctx, retry.NewConstant(200*time.Millisecond), func(ctx context.Context) error {
		if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return retry.RetryableError(err)
		}
		n, err := client.CoreV1().Nodes().Get(ctx, "node-0", metav1.GetOptions{})
		if err != nil {
			return retry.RetryableError(err)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return retry.RetryableError(fmt.Errorf("node not Ready"))
	})
	if err != nil {
		b.Fatal(err)
	}
	run("delete", "cluster", "--name", name)
}
