package realnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
)

// ownerSuffix ends the names of a node's cgroups and cluster directory with
// the pid of the process that started it: the node's namespaces die with
// that process (Pdeathsig on unshare, --kill-child), so once it is gone
// what carries its pid is garbage.
func ownerSuffix() string { return "-p" + strconv.Itoa(os.Getpid()) }

var ownedRE = regexp.MustCompile(`^krgeobuk-realnode-.*-p([0-9]+)(-[0-9]+)?$`)

// SweepStale removes the cgroups and the cluster directories in dir
// (os.TempDir() when empty) of nodes whose starting process is gone: what
// a test process killed outright (SIGKILL, OOM) leaves behind. Start calls
// it; a live node's are never touched.
func SweepStale(dir string) error {
	if dir == "" {
		dir = os.TempDir()
	}
	var errs []error
	own, err := ownCgroups()
	if err != nil {
		return err
	}
	for _, h := range hierarchies {
		key := h
		if h == "systemd" {
			key = "name=systemd"
		}
		parent := filepath.Join("/sys/fs/cgroup", h, own[key])
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if e.IsDir() && stale(e.Name()) {
				errs = append(errs, removeCgroups([]string{filepath.Join(parent, e.Name())}))
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && stale(e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep stale nodes: %w", err)
	}
	return nil
}

// stale reports whether name is a node's and its owner process is gone.
func stale(name string) bool {
	m := ownedRE.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
