// Package offhosttest runs real off-host backup targets on loopback for
// tests: Debian's OpenSSH sshd in a private configuration (its own host key,
// authorized_keys and port; no system sshd is touched) and versitygw, an
// S3 gateway over a local folder, built once from the Go module proxy into
// $KRGEOBUK_CACHE/versitygw/<version> (make s3-server).
//
// Each server is a child process of the test on a free 127.0.0.1 port,
// ready when Start returns and stopped with everything it started (its whole
// process group) by t.Cleanup. WithFull serves from a small tmpfs mounted in
// a private mount namespace of the server, so the target fills up for real
// and the mount disappears with the server.
package offhosttest

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// startTries bounds the starts of one server: a free port can be taken
// before the server binds it.
const startTries = 3

func isBindError(log string) bool {
	l := strings.ToLower(log)
	return strings.Contains(l, "address already in use") || strings.Contains(l, "bind to port")
}

// inPrivateMount returns the command that runs argv with a tmpfs of size
// bytes mounted on dir, in a mount namespace of its own: the mount is
// invisible to everything else and vanishes with the process.
func inPrivateMount(tb testing.TB, dir string, size int64, argv []string) *exec.Cmd {
	tb.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		tb.Fatalf("offhosttest: unshare not found: install the Debian package util-linux (make deps)")
	}
	script := fmt.Sprintf(`mount -t tmpfs -o size=%d,mode=0700 krgeobuk-offhost-full "$1" && shift && exec "$@"`, size)
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", dir}, argv...)
	return exec.Command(unshare, args...)
}
