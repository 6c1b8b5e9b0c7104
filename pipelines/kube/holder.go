package kube

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Annotations on the deploy lock's Lease that say which process holds it.
// The holder identity is free text for people; these are for machines: a
// deploy on the same host can tell that the holder's process is gone (a
// deploy killed with SIGKILL never releases its lock) and take the lock over
// at once instead of after the TTL.
const (
	AnnotationHolderHost = "deploy.krgeobuk.dev/holder-host"
	// AnnotationHolderHostID is the host's identity: boot id and PID
	// namespace. Two containers on one kernel share the boot id but not the
	// PID namespace, and a rebooted host has a new boot id, so equal
	// identities mean the holder's PID can be looked up here.
	AnnotationHolderHostID = "deploy.krgeobuk.dev/holder-host-id"
	AnnotationHolderPID    = "deploy.krgeobuk.dev/holder-pid"
	// AnnotationHolderStart is the holder process's start time in clock
	// ticks after boot (/proc/<pid>/stat field 22), so that a PID the kernel
	// has handed to another process is not mistaken for the holder.
	AnnotationHolderStart = "deploy.krgeobuk.dev/holder-process-start"
)

var holderAnnotations = []string{AnnotationHolderHost, AnnotationHolderHostID, AnnotationHolderPID, AnnotationHolderStart}

// process identifies one process on one host.
type process struct {
	host   string // hostname, for people
	hostID string // boot id + PID namespace; "" where /proc does not say
	pid    int
	start  string // "" where /proc does not say
}

var (
	selfOnce sync.Once
	self     process
)

// thisProcess is the process running this code.
func thisProcess() process {
	selfOnce.Do(func() {
		self.host, _ = os.Hostname()
		self.hostID = hostIdentity()
		self.pid = os.Getpid()
		self.start, _ = processStart(self.pid)
	})
	return self
}

func hostIdentity() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	// Both are valid annotation values; "pid:[4026531836]" keeps its brackets.
	return strings.TrimSpace(string(boot)) + "/" + ns
}

// errExited: the process has exited but is not reaped yet (a zombie).
var errExited = errors.New("process has exited")

// processStart reads the start time of pid from /proc/<pid>/stat. A zombie
// yields errExited.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields after it start behind the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", fmt.Errorf("process %d: %w", pid, errExited)
	}
	return f[19], nil
}

func (p process) annotations() map[string]string {
	return map[string]string{
		AnnotationHolderHost:   p.host,
		AnnotationHolderHostID: p.hostID,
		AnnotationHolderPID:    strconv.Itoa(p.pid),
		AnnotationHolderStart:  p.start,
	}
}

func processOf(annotations map[string]string) process {
	pid, _ := strconv.Atoi(annotations[AnnotationHolderPID])
	return process{
		host:   annotations[AnnotationHolderHost],
		hostID: annotations[AnnotationHolderHostID],
		pid:    pid,
		start:  annotations[AnnotationHolderStart],
	}
}

// gone says why the holder process p certainly no longer runs, or "" when
// it runs or this host cannot tell (another host, no /proc, a holder that
// recorded no process). Only a holder on this very host (same boot and PID
// namespace, not merely the same hostname) can be judged.
func (p process) gone() string {
	me := thisProcess()
	if p.hostID == "" || me.hostID == "" || p.hostID != me.hostID || p.host != me.host || p.pid <= 0 {
		return ""
	}
	// kill(pid, 0) tells an absent process (ESRCH) from one we may not
	// signal; /proc alone cannot where it hides other users' processes.
	if !processExists(p.pid) {
		return fmt.Sprintf("its process %d on this host (%s) has exited", p.pid, p.host)
	}
	start, err := processStart(p.pid)
	switch {
	case errors.Is(err, errExited):
		return fmt.Sprintf("its process %d on this host (%s) has exited", p.pid, p.host)
	case err != nil:
		return ""
	case p.start != "" && start != p.start:
		return fmt.Sprintf("its process %d on this host (%s) has exited (the PID now belongs to another process)", p.pid, p.host)
	}
	return ""
}
