// Package dbtest starts real MariaDB and Redis servers for tests.
//
// Each server is a Debian binary (mariadbd, redis-server) started by the test
// on a free loopback port with its own data directory under t.TempDir(). It is
// ready (answers an authenticated query) when Start returns, and it is stopped
// and its files removed by t.Cleanup. Passwords are random per server and are
// handed to the server through files, never on its command line.
//
// A missing binary fails the test with a message that names `make deps`; it
// never skips.
package dbtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sbinDirs are searched after PATH; a variable so a test can empty it.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// lookBinary finds a server binary on PATH or in the sbin directories that a
// non-login root shell may lack on its PATH.
func lookBinary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	tb.Fatalf("dbtest: %s not found: install the Debian package %s with `make deps`", name, pkg)
	return ""
}

// randomSecret returns a password that is unique to one server.
func randomSecret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("dbtest: crypto/rand: %v", err))
	}
	return "pw-" + hex.EncodeToString(b)
}

// isBindError tells whether a start failed because the port was taken
// between freePort and the server's bind.
func isBindError(log string) bool {
	l := strings.ToLower(log)
	return strings.Contains(l, "address already in use") || strings.Contains(l, "do you already have another")
}

// guard serialises Start and Stop of one server.
type guard struct{ mu sync.Mutex }
