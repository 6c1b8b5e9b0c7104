package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sethvargo/go-retry"
)

// gracefulStop bounds the engine's own shutdown after SIGTERM. It garbage-collects its snapshots
// before it exits, and that alone was measured at 57 s on two busy cores after a full make e2e;
// SIGKILL past this bound costs a cache recovery at the next start.
const gracefulStop = 2 * time.Minute

// reapWait bounds the wait for the kernel to reap the processes of the engine's namespaces once
// their init is gone: killed processes still show in /proc until they are reaped.
const reapWait = 15 * time.Second

// down stops the engine (SIGTERM, a bounded wait, then SIGKILL of its pid namespace's init) and
// proves that nothing is left: no process in its namespaces, no new host mount, network device
// or file outside the state folder.
func down(ctx context.Context, s stateDir) error {
	st, err := loadState(s)
	if err != nil {
		return err
	}
	if st == nil || (!alive(st.NsPID) && !alive(st.UnsharePID)) {
		fmt.Println("engine: not up, nothing to stop")
		for _, f := range []string{s.file(), s.runnerHostFile()} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	}
	start := time.Now()
	target := st.NsPID
	if target == 0 {
		target = st.UnsharePID
	}
	_ = syscall.Kill(target, syscall.SIGTERM)
	gone := func(ctx context.Context) error {
		if alive(st.NsPID) || alive(st.UnsharePID) {
			return retry.RetryableError(errors.New("still running"))
		}
		return nil
	}
	if err := retry.Do(ctx, retry.WithMaxDuration(gracefulStop, retry.NewConstant(250*time.Millisecond)), gone); err != nil {
		fmt.Printf("engine: no exit %s after SIGTERM, sending SIGKILL\n", gracefulStop)
		// Killing pid 1 of a pid namespace kills every process in it.
		_ = syscall.Kill(st.NsPID, syscall.SIGKILL)
		_ = syscall.Kill(st.UnsharePID, syscall.SIGKILL)
		if err := retry.Do(ctx, retry.WithMaxDuration(10*time.Second, retry.NewConstant(100*time.Millisecond)), gone); err != nil {
			return fmt.Errorf("engine: still running after SIGKILL (pid %d)", st.NsPID)
		}
	}
	fmt.Printf("engine: stopped in %.1fs\n", time.Since(start).Seconds())
	reaped := func(ctx context.Context) error {
		if n := len(nsProcesses(st)); n > 0 {
			return retry.RetryableError(fmt.Errorf("%d processes not reaped yet", n))
		}
		return nil
	}
	_ = retry.Do(ctx, retry.WithMaxDuration(reapWait, retry.NewConstant(100*time.Millisecond)), reaped) // leftovers names any that stay
	if err := leftovers(st); err != nil {
		return err
	}
	for _, f := range []string{s.file(), s.runnerHostFile(), s.socket()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	fmt.Println("engine: checked: no process, mount, network device or file left outside", filepath.Dir(s.run()))
	return nil
}

// leftovers reports what the engine left on the host.
func leftovers(st *state) error {
	var problems []string
	for _, pid := range nsProcesses(st) {
		problems = append(problems, "process "+pid+" still in the engine's namespaces")
	}
	mounts, err := mountPoints("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if !slices.Contains(st.HostMounts, m) && engineMount(m) {
			problems = append(problems, "host mount "+m)
		}
	}
	links, err := netLinks()
	if err != nil {
		return err
	}
	for _, l := range links {
		if !slices.Contains(st.HostLinks, l) {
			problems = append(problems, "host network device "+l)
		}
	}
	for _, p := range st.Absent {
		if _, err := os.Lstat(p); err == nil {
			problems = append(problems, "host file "+p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("engine left behind: %s", strings.Join(problems, "; "))
	}
	return nil
}

// nsProcesses lists the pids of the host's processes in the engine's pid or network namespace.
func nsProcesses(st *state) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/ns")
	for _, p := range procs {
		pidNS, _ := os.Readlink(filepath.Join(p, "pid"))
		netNS, _ := os.Readlink(filepath.Join(p, "net"))
		if (st.PidNS != "" && pidNS == st.PidNS) || (st.NetNS != "" && netNS == st.NetNS) {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}

// engineMount reports whether a new host mount point is one the engine would make.
func engineMount(m string) bool {
	for _, d := range append(slices.Clone(overlayDirs), "/run", "/sys/fs/cgroup", os.Getenv("KRGEOBUK_CACHE")) {
		if d != "" && (m == d || strings.HasPrefix(m, d+"/")) {
			return true
		}
	}
	return strings.Contains(m, "dagger") || strings.Contains(m, "buildkit")
}

// execIn runs argv in the engine's network namespace only, with KRGEOBUK_ENGINE_HOST set;
// `--dir DIR` before `--` sets its working directory (`go -C` moved ours).
func execIn(ctx context.Context, s stateDir, argv []string) error {
	dir := ""
	if len(argv) > 1 && argv[0] == "--dir" {
		dir, argv = argv[1], argv[2:]
	}
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return errors.New("usage: engine exec -- CMD [ARGS...]")
	}
	st, err := loadState(s)
	if err != nil {
		return err
	}
	if st == nil || !alive(st.NsPID) {
		return errors.New("engine is not up (run make engine-up)")
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-n", "-t", fmt.Sprint(st.NsPID), "--"}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KRGEOBUK_ENGINE_HOST=unix://"+st.Socket)
	if cli := filepath.Join(st.Bin, "dagger"); st.Bin != "" && fileExists(cli) {
		// the dagger CLI of the running engine's build, for the tests that call it
		cmd.Env = append(cmd.Env, "KRGEOBUK_DAGGER_CLI="+cli)
	}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	return err
}
