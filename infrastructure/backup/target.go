// Package backup takes, checks, prunes, restores and verifies the data
// server's backups: consistent MySQL dumps and point-in-time Redis RDB
// snapshots, each written atomically beside a sha256 sidecar and a metadata
// file, and reports the outcome as Prometheus textfile metrics.
//
// A backup exists only once it is complete: the archive is written under a
// hidden temporary name and renamed into place after the dump, the
// compression and the archive test all succeeded. Passwords reach child
// processes through a defaults file read from a pipe (mysqldump, mysql:
// nothing on disk that could outlive a killed run), MYSQL_PWD (docker exec)
// or REDISCLI_AUTH (redis-cli), never their command lines; every other child
// gets an environment without any password. They are scrubbed from every
// error.
package backup

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Target is one data store to back up or restore into.
type Target struct {
	Store catalog.DataStore
	// Host and Port are where the tool connects (host mode, and the SQL and
	// Redis connections of container mode).
	Host string
	Port int
	// User is the MySQL account (unused for Redis).
	User string
	// Password is the store's password. It is never logged.
	Password string
	// Container, when set, runs the dump and load tools inside that
	// container (docker exec) instead of on this host.
	Container string
}

// Addr is host:port.
func (t Target) Addr() string { return fmt.Sprintf("%s:%d", t.Host, t.Port) }

// sameAddress reports whether a and b reach the same port on the same
// machine: every name is resolved, so localhost meets 127.0.0.1 and ::1.
// Container mode counts as the same only for the same container. This is
// the cheap first check; the servers' own identity decides the rest.
func sameAddress(ctx context.Context, a, b Target) bool {
	if a.Port != b.Port || a.Container != b.Container {
		return false
	}
	ips := func(host string) []string {
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return []string{host}
		}
		out := make([]string, 0, len(addrs))
		for _, s := range addrs {
			ip := net.ParseIP(s)
			switch {
			case ip == nil:
				out = append(out, s)
			case ip.IsLoopback() || ip.IsUnspecified():
				// Any loopback or wildcard address reaches this machine.
				out = append(out, "this machine")
			default:
				out = append(out, ip.String())
			}
		}
		return out
	}
	for _, x := range ips(a.Host) {
		for _, y := range ips(b.Host) {
			if x == y {
				return true
			}
		}
	}
	return false
}

// String names the target for people; it never includes the password.
func (t Target) String() string {
	if t.Container != "" {
		return fmt.Sprintf("%s (container %s, %s)", t.Store.Name, t.Container, t.Addr())
	}
	return fmt.Sprintf("%s (%s)", t.Store.Name, t.Addr())
}

// LookupStore resolves a catalog store by name and checks its engine, so a
// restore can never be pointed at something that is not a known store of the
// expected kind.
func LookupStore(name, engine string) (catalog.DataStore, error) {
	var known []string
	for _, s := range catalog.Stores() {
		if engine != "" && s.Engine != engine {
			continue
		}
		if s.Name == name {
			return s, nil
		}
		known = append(known, s.Name)
	}
	kind := "data store"
	if engine != "" {
		kind = engine + " store"
	}
	return catalog.DataStore{}, fmt.Errorf("unknown %s %q (known: %s)", kind, name, strings.Join(known, ", "))
}

// EnvPrefix is the prefix of a store's variables in the data server's .env:
// AUTH for auth-mysql and auth-redis, AUTHZ for the authz ones.
func EnvPrefix(store catalog.DataStore) string {
	base := strings.TrimSuffix(strings.TrimSuffix(store.Name, "-mysql"), "-redis")
	return strings.ToUpper(strings.ReplaceAll(base, "-", "_"))
}

// PasswordVar is the .env variable holding the password the tool uses for a
// store: the MySQL root password or the Redis requirepass.
func PasswordVar(store catalog.DataStore) string {
	if store.Engine == "mysql" {
		return EnvPrefix(store) + "_MYSQL_ROOT_PASSWORD"
	}
	return EnvPrefix(store) + "_REDIS_PASSWORD"
}

// DatabaseVar is the .env variable naming a MySQL store's database.
func DatabaseVar(store catalog.DataStore) string { return EnvPrefix(store) + "_MYSQL_DATABASE" }

// redact removes secrets from text that may reach a log or an error.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}
