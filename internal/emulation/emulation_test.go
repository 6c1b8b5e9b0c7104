package emulation_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
	"github.com/krgeobuk/krgeobuk-infra/internal/toolbuild"
)

// arm64Program cross-compiles a program that prints the architecture it
// believes it runs on.
func arm64Program(t *testing.T) string {
	t.Helper()
	bin, err := emulation.BuildArm64(context.Background(), t.TempDir(), `package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Println(runtime.GOARCH)
	if len(os.Args) > 1 {
		fmt.Println("args:", os.Args[1:])
	}
}
`)
	require.NoError(t, err)
	return bin
}

func fetch(t *testing.T) emulation.Emulator {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a user namespace mapping every id, and binfmt_misc")
	}
	cache, err := toolbuild.CacheRoot()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := emulation.Fetch(ctx, cache, t.Logf)
	require.NoError(t, err)
	require.FileExists(t, e.Path)
	require.NotEmpty(t, e.Version)
	return e
}

// TestArm64RunsInsideTheNamespaceOnly: an arm64 program, and the arm64
// children it starts, run under the emulator inside the namespace, while the
// host, at that very moment, still refuses to run the same file.
func TestArm64RunsInsideTheNamespaceOnly(t *testing.T) {
	e := fetch(t)
	prog := arm64Program(t)

	// Before: the host cannot run it.
	requireHostRefuses(t, prog)

	dir := t.TempDir()
	fifo := filepath.Join(dir, "hold")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The arm64 program runs, then a shell runs it again as a child (an
	// emulated process's own exec), then the namespace waits on the fifo
	// so the host can be checked while the registration exists.
	cmd, err := e.Command(ctx, nil, "/bin/sh", "-c", `"$1" direct && sh -c '"$1" child' sh "$1" && echo ready && read -r _ < "$2"`, "sh", prog, fifo)
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			break
		}
	}
	require.Equal(t, []string{"arm64", "args: [direct]", "arm64", "args: [child]", "ready"}, lines, "stderr: %s", stderr.String())

	// While the namespace holds its registration, the host still refuses.
	requireHostRefuses(t, prog)

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = w.WriteString("done\n")
	require.NoError(t, w.Close())
	require.NoError(t, cmd.Wait(), stderr.String())

	// After: nothing was left behind.
	requireHostRefuses(t, prog)
}

func requireHostRefuses(t *testing.T, prog string) {
	t.Helper()
	err := exec.Command(prog).Run()
	require.Error(t, err)
	require.True(t, errors.Is(err, syscall.ENOEXEC), "the host ran an arm64 program: %v", err)
}

func TestRegistrationNamesItsOwnEntryAndFlags(t *testing.T) {
	e := emulation.Emulator{Path: "/cache/qemu/7.2/qemu-aarch64-static", Version: "7.2"}
	reg := e.Registration()
	fields := strings.Split(reg, ":")
	require.Len(t, fields, 8, reg)
	require.Equal(t, "krgeobuk-qemu-aarch64", fields[1], "never Debian's own qemu-aarch64 name")
	require.Equal(t, "M", fields[2])
	require.True(t, strings.HasPrefix(fields[4], `\x7f\x45\x4c\x46\x02`), "64-bit ELF magic")
	require.Equal(t, e.Path, fields[6])
	require.Equal(t, "OPF", fields[7], "F: usable inside containers and chroots that lack the file")
}

func TestCommandNeedsArgs(t *testing.T) {
	_, err := emulation.Emulator{}.Command(context.Background(), nil)
	require.Error(t, err)
}
