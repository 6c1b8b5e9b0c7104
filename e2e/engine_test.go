package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dagger.io/dagger"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercall"
	"github.com/krgeobuk/krgeobuk-infra/e2e/daggersession"
	"github.com/krgeobuk/krgeobuk-infra/e2e/smokeimage"
	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
)

// The registry `engine up` serves inside the engine's network namespace; the tests run there
// (`engine exec`), so both addresses reach it.
const (
	localRegistry   = "127.0.0.1:5000"
	gatewayRegistry = "10.87.0.1:5000"
	busyboxTag      = "busybox:krgeobuk-e2e"
)

var (
	sessOnce sync.Once
	sess     *daggersession.Session
	sessErr  error
	pushOnce sync.Once
	pushErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sess != nil {
		_ = sess.Close()
	}
	report.print()
	os.Exit(code)
}

// session returns the suite's engine session, failing the test (not skipping) without an engine.
func session(t *testing.T) *daggersession.Session {
	t.Helper()
	sessOnce.Do(func() {
		host, err := daggersession.RunnerHost()
		if err != nil {
			sessErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		sess, sessErr = daggersession.Start(ctx, host)
		report.add("session start", time.Since(start))
	})
	require.NoError(t, sessErr, "these tests need a running engine: run them with `make e2e` (or `make engine-up` first)")
	return sess
}

// pushBusybox publishes the smoke image as 127.0.0.1:5000/library/busybox:krgeobuk-e2e, which is
// also docker.io/library/busybox through the engine's mirror.
func pushBusybox(t *testing.T) {
	t.Helper()
	pushOnce.Do(func() {
		img, err := smokeimage.Busybox()
		if err != nil {
			pushErr = err
			return
		}
		ref, err := name.ParseReference(localRegistry+"/library/"+busyboxTag, name.Insecure)
		if err != nil {
			pushErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pushErr = remote.Write(ref, img, remote.WithContext(ctx))
	})
	require.NoError(t, pushErr, "push the busybox smoke image to %s (is the test running through `engine exec`?)", localRegistry)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestDirectoryRoundTrip(t *testing.T) {
	s := session(t)
	c := ctx(t)
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "in.txt"), []byte("from the host"), 0o644))
	dir := s.Dagger().Host().Directory(src).WithNewFile("out.txt", "made in the engine")
	got, err := dir.File("in.txt").Contents(c)
	require.NoError(t, err)
	require.Equal(t, "from the host", got)

	dst := t.TempDir()
	_, err = dir.Export(c, dst)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dst, "out.txt"))
	require.NoError(t, err)
	require.Equal(t, "made in the engine", string(b))
}

func TestContainerExecFromMirroredImage(t *testing.T) {
	s := session(t)
	pushBusybox(t)
	tests := []struct{ name, address string }{
		{"docker.io through the local mirror", busyboxTag},
		{"the registry at the gateway address", gatewayRegistry + "/library/" + busyboxTag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := s.Dagger().Container().From(tt.address).
				WithEnvVariable("BUST", fmt.Sprint(time.Now().UnixNano())). // run, don't reuse a cached exec
				WithExec([]string{"sh", "-c", "test -x /bin/busybox && echo hello from busybox"}).
				Stdout(ctx(t))
			require.NoError(t, err, "exec in %s", tt.address)
			require.Equal(t, "hello from busybox\n", out)
		})
	}
}

func TestServiceBinding(t *testing.T) {
	s := session(t)
	pushBusybox(t)
	d := s.Dagger()
	web := d.Container().From(busyboxTag).
		WithNewFile("/www/index.html", "served by the web service").
		WithExposedPort(8080).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"httpd", "-f", "-p", "8080", "-h", "/www"}})
	out, err := d.Container().From(busyboxTag).
		WithServiceBinding("web", web).
		WithExec([]string{"wget", "-qO-", "http://web:8080/index.html"}).
		Stdout(ctx(t))
	require.NoError(t, err)
	require.Equal(t, "served by the web service", out)
}

func TestPublishResolvesDigest(t *testing.T) {
	s := session(t)
	pushBusybox(t)
	c := ctx(t)
	stamp := fmt.Sprint(time.Now().UnixNano())
	ref, err := s.Dagger().Container().From(busyboxTag).
		WithNewFile("/stamp", stamp).
		Publish(c, localRegistry+"/krgeobuk-e2e/published:latest")
	require.NoError(t, err)
	_, digest, ok := strings.Cut(ref, "@")
	require.True(t, ok, "publish returned %q without a digest", ref)

	r, err := name.ParseReference(localRegistry+"/krgeobuk-e2e/published:latest", name.Insecure)
	require.NoError(t, err)
	desc, err := remote.Head(r, remote.WithContext(c))
	require.NoError(t, err)
	require.Equal(t, digest, desc.Digest.String(), "the registry's tag must resolve to the published digest")

	// The published image is what the engine pulls back by digest.
	got, err := s.Dagger().Container().From(localRegistry + "/krgeobuk-e2e/published@" + digest).File("/stamp").Contents(c)
	require.NoError(t, err)
	require.Equal(t, stamp, got)
}

func TestContainerReachesGatewayRegistry(t *testing.T) {
	s := session(t)
	pushBusybox(t)
	r, err := name.ParseReference(localRegistry+"/library/"+busyboxTag, name.Insecure)
	require.NoError(t, err)
	desc, err := remote.Head(r, remote.WithContext(ctx(t)))
	require.NoError(t, err)
	// Code in module containers (deploy resolving digests) talks to the registry at the gateway.
	out, err := s.Dagger().Container().From(busyboxTag).
		WithEnvVariable("BUST", fmt.Sprint(time.Now().UnixNano())).
		WithExec([]string{"wget", "-qO-", "--header", "Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json",
			"http://" + gatewayRegistry + "/v2/library/busybox/manifests/" + desc.Digest.String()}).
		Stdout(ctx(t))
	require.NoError(t, err)
	require.Contains(t, out, `"layers"`, "the manifest served at the gateway address")
}

// TestSecretStaysSecret passes a secret the way the runner does (a setSecret query variable) and
// uses it in a container: the value arrives, and neither the engine's log nor the exec output
// shows it.
func TestSecretStaysSecret(t *testing.T) {
	s := session(t)
	pushBusybox(t)
	c := ctx(t)
	plain := fmt.Sprintf("kube-token-%d", time.Now().UnixNano())
	id, err := daggercall.SessionResolver(s).Secret(c, "kubeconfig", plain)
	require.NoError(t, err)
	require.NotContains(t, id, plain)
	sec := s.Dagger().LoadSecretFromID(dagger.SecretID(id))
	got, err := sec.Plaintext(c)
	require.NoError(t, err)
	require.Equal(t, plain, got)

	out, err := s.Dagger().Container().From(busyboxTag).
		WithSecretVariable("KUBE_TOKEN", sec).
		WithExec([]string{"sh", "-c", `echo "length ${#KUBE_TOKEN}"; echo "$KUBE_TOKEN"`}).
		Stdout(c)
	require.NoError(t, err)
	require.Contains(t, out, fmt.Sprintf("length %d", len(plain)))
	require.NotContains(t, out, plain, "the engine scrubs secrets from output")

	host, err := daggersession.RunnerHost()
	require.NoError(t, err)
	log, err := os.ReadFile(filepath.Join(filepath.Dir(strings.TrimPrefix(host, "unix://")), "engine.log"))
	require.NoError(t, err)
	require.NotContains(t, string(log), plain, "secret in the engine log")
}

// TestArm64RunsInTheEngineOnly: the engine runs a linux/arm64 program under the emulator `engine
// up` registered in the engine's own user namespace, and its children too; this test process,
// on the host's side of that namespace at the same moment, cannot run the same file.
func TestArm64RunsInTheEngineOnly(t *testing.T) {
	s := session(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := emulation.BuildArm64(ctx, t.TempDir(), `package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
)

// prints its architecture, then runs itself once more as a child
func main() {
	fmt.Println(runtime.GOARCH)
	if len(os.Args) == 1 {
		out, err := exec.Command(os.Args[0], "child").CombinedOutput()
		fmt.Printf("child: %s", out)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
}
`)
	require.NoError(t, err)

	d := s.Dagger()
	got, err := d.Container(dagger.ContainerOpts{Platform: "linux/arm64"}).
		WithFile("/arch", d.Host().File(bin), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithExec([]string{"/arch"}).
		Stdout(ctx)
	require.NoError(t, err)
	require.Equal(t, "arm64\nchild: arm64\n", got)

	err = exec.CommandContext(ctx, bin).Run()
	require.ErrorIs(t, err, syscall.ENOEXEC, "the host runs no arm64 program while the engine does")
}
