package backup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup/remote"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/offhosttest"
)

// target is one real off-host server as the tests drive it.
type target struct {
	name string
	env  []string
	// file is where the server keeps the file of a key (relative to the
	// backups' root on the remote).
	file func(key string) string
	stop func() error
	// addr is the server's host:port, to route through a proxy.
	addr string
	// via returns the environment that reaches the server through addr.
	via func(addr string) []string
}

func sftpTarget(t *testing.T, opts ...offhosttest.Option) target {
	s := offhosttest.StartSSH(t, opts...)
	env := func(addr string) []string {
		return []string{
			remote.EnvURL + "=" + strings.Replace(s.URL(), s.Addr(), addr, 1),
			remote.EnvSSHKeyFile + "=" + s.KeyFile,
			remote.EnvSSHHostKey + "=" + s.HostKeyLine,
		}
	}
	return target{name: "sftp", env: env(s.Addr()), file: s.Path, stop: s.Stop, addr: s.Addr(), via: env}
}

func s3Target(t *testing.T, opts ...offhosttest.Option) target {
	s := offhosttest.StartS3(t, opts...)
	env := func(addr string) []string {
		return []string{
			remote.EnvURL + "=s3://" + s.Bucket + "/krgeobuk",
			remote.EnvS3Endpoint + "=http://" + addr,
			remote.EnvS3AccessKeyID + "=" + s.AccessKey,
			remote.EnvS3SecretAccessKey + "=" + s.SecretKey,
		}
	}
	return target{name: "s3", env: env(s.Addr()), file: func(k string) string { return s.Path("krgeobuk/" + k) },
		stop: s.Stop, addr: s.Addr(), via: env}
}

// bothTargets runs f against a fresh SFTP server and a fresh S3 server.
func bothTargets(t *testing.T, f func(t *testing.T, start func(...offhosttest.Option) target)) {
	for _, kind := range []string{"sftp", "s3"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f(t, func(opts ...offhosttest.Option) target {
				if kind == "sftp" {
					return sftpTarget(t, opts...)
				}
				return s3Target(t, opts...)
			})
		})
	}
}

// mysqlBackups starts a seeded MariaDB and takes n backups of auth.
func mysqlBackups(t *testing.T, n int) (m *dbtest.MariaDB, dir string, env, args []string) {
	t.Helper()
	m = dbtest.StartMariaDB(t)
	seedAuth(t, m)
	dir = t.TempDir()
	env = mysqlEnv(m, "AUTH")
	args = []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--database", "auth", "--backup-dir", dir}
	for i := 0; i < n; i++ {
		res := script(t, env, "backup-mysql.sh", append(args, "--textfile-dir", "-")...)
		require.Equal(t, 0, res.code, res.out)
	}
	return m, dir, env, args
}

// remoteFiles lists what the server holds for a series: name -> content.
func remoteFiles(t *testing.T, tg target, series string) map[string][]byte {
	t.Helper()
	dir := tg.file(series)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return map[string][]byte{}
	}
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

// completeCopies are the archives whose checksum sidecar the server holds.
func completeCopies(files map[string][]byte) []string {
	var out []string
	for name := range files {
		if a, ok := strings.CutSuffix(name, backup.SumSuffix); ok && !strings.HasPrefix(name, ".") {
			if _, has := files[a]; has {
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

func names(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	sort.Strings(out)
	return out
}

// snapshot reads every local file under dir (the local copies must never
// change because of anything off-host).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range tree(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		out[f] = sha256Of(b)
	}
	return out
}

func sha256Of(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestOffhostCopyVerifiesAndAppliesRetentionOnBothTargets(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, start func(...offhosttest.Option) target) {
		tg := start()
		_, dir, env, args := mysqlBackups(t, 3)
		local := archives(t, dir)
		require.Len(t, local, 3)
		for i, a := range local { // oldest first: 300, 299, 298 days old
			age(t, a, time.Duration(300-i)*24*time.Hour)
		}
		before := snapshot(t, dir)
		tf := t.TempDir()
		env = append(env, tg.env...)
		copyArgs := append(args, "--textfile-dir", tf)

		res := script(t, env, "offhost-copy.sh", append(copyArgs, "--keep", "3", "--max-age", "720h")...)
		require.Equal(t, 0, res.code, res.out)
		require.Contains(t, res.out, "3 of 3 verified local backups copied")
		files := remoteFiles(t, tg, "auth-mysql/auth")
		require.Equal(t, names(local), completeCopies(files))
		require.Len(t, files, 9, "no temporary or orphaned file on the remote: %v", keys(files))
		for _, a := range local {
			for _, suffix := range []string{"", backup.SumSuffix, backup.MetaSuffix} {
				want, err := os.ReadFile(a + suffix)
				require.NoError(t, err)
				require.Equal(t, want, files[filepath.Base(a)+suffix], "%s%s differs on the remote", filepath.Base(a), suffix)
			}
		}
		require.Equal(t, before, snapshot(t, dir), "the off-host copy changed the local backups")
		newest, err := backup.ReadMetadata(local[2])
		require.NoError(t, err)
		got := metrics(t, filepath.Join(tf, backup.OffhostMetricsFile("auth-mysql")))
		require.Equal(t, 1.0, got[backup.MetricOffhostLastRunSuccess+"{auth-mysql}"])
		require.Equal(t, float64(newest.FinishedAt.Unix()), got[backup.MetricOffhostLastSuccess+"{auth-mysql}"])

		// A tighter retention deletes the oldest copy on the remote only,
		// and uploads nothing: the two it keeps are there intact.
		for run := 0; run < 2; run++ {
			res = script(t, env, "offhost-copy.sh", append(copyArgs, "--keep", "2", "--max-age", "720h")...)
			require.Equal(t, 0, res.code, res.out)
			require.Contains(t, res.out, "0 of 2 verified local backups copied")
			if run == 0 {
				require.Contains(t, res.out, "off-host retention auth-mysql: deleted "+filepath.Base(local[0]))
			} else {
				require.NotContains(t, res.out, "deleted", "the second run has nothing left to delete")
			}
			files = remoteFiles(t, tg, "auth-mysql/auth")
			require.Equal(t, names(local[1:]), completeCopies(files))
			require.Len(t, files, 6, "the oldest copy left files behind: %v", keys(files))
			require.Equal(t, before, snapshot(t, dir), "the remote retention touched the local backups")
		}
	})
}

// cutter relays TCP connections to upstream and cuts every one of them
// once limit bytes went upstream in total; after that it refuses new ones:
// a link that dies in the middle of an upload.
type cutter struct {
	l       net.Listener
	limit   int64
	mu      sync.Mutex
	sent    int64
	cut     bool
	conns   []net.Conn
	wg      sync.WaitGroup
	cutOnce sync.Once
	cutDone chan struct{}
}

func newCutter(t *testing.T, upstream string, limit int64) *cutter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &cutter{l: l, limit: limit, cutDone: make(chan struct{})}
	go c.serve(upstream)
	t.Cleanup(func() { c.close(); c.wg.Wait() })
	return c
}

func (c *cutter) addr() string { return c.l.Addr().String() }

func (c *cutter) serve(upstream string) {
	for {
		down, err := c.l.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", upstream, 10*time.Second)
		if err != nil {
			_ = down.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, down, up)
		c.mu.Unlock()
		c.wg.Add(2)
		go func() { defer c.wg.Done(); _, _ = io.Copy(down, up); _ = down.Close() }()
		go func() { defer c.wg.Done(); c.relayUp(down, up) }()
	}
}

func (c *cutter) relayUp(down, up net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := down.Read(buf)
		if n > 0 {
			c.mu.Lock()
			over := c.sent+int64(n) > c.limit
			c.sent += int64(n)
			c.mu.Unlock()
			if over {
				c.close()
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = up.Close()
			return
		}
	}
}

// close cuts every connection and stops accepting.
func (c *cutter) close() {
	c.cutOnce.Do(func() {
		_ = c.l.Close()
		c.mu.Lock()
		c.cut = true
		for _, x := range c.conns {
			_ = x.Close()
		}
		c.mu.Unlock()
		close(c.cutDone)
	})
}

func (c *cutter) wasCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut && c.sent > c.limit
}

// bigBackup adds incompressible rows so the dump is a few MiB, and takes a
// backup.
func bigBackup(t *testing.T, m *dbtest.MariaDB, dir string, env, args []string) string {
	t.Helper()
	m.Exec(t, "auth", "CREATE TABLE IF NOT EXISTS bulk (id INT PRIMARY KEY, b BLOB) ENGINE=InnoDB; "+
		"INSERT INTO bulk SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_3000")
	before := archives(t, dir)
	res := script(t, env, "backup-mysql.sh", append(args, "--textfile-dir", "-")...)
	require.Equal(t, 0, res.code, res.out)
	for _, a := range archives(t, dir) {
		if !contains(before, a) {
			st, err := os.Stat(a)
			require.NoError(t, err)
			require.Greater(t, st.Size(), int64(2<<20), "the big backup is big")
			return a
		}
	}
	t.Fatal("no new backup")
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A copy cut off in the middle leaves nothing on the remote that looks like
// a backup, fails the run, keeps the local backups, and the next run
// uploads it completely.
func TestOffhostCopyInterruptedMidwayLeavesNoCompleteLookingCopy(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, start func(...offhosttest.Option) target) {
		tg := start()
		m, dir, env, args := mysqlBackups(t, 0)
		big := bigBackup(t, m, dir, env, args)
		before := snapshot(t, dir)
		tf := t.TempDir()
		proxy := newCutter(t, tg.addr, 1<<20)
		res := script(t, append(append([]string{}, env...), tg.via(proxy.addr())...), "offhost-copy.sh",
			append(args, "--textfile-dir", tf)...)
		require.True(t, proxy.wasCut(), "the link was never cut, so the test proved nothing: %s", res.out)
		require.Equal(t, 1, res.code, res.out)
		require.Contains(t, res.out, "off-host copy of auth-mysql")
		files := remoteFiles(t, tg, "auth-mysql/auth")
		require.Empty(t, completeCopies(files), "an interrupted copy looks complete: %v", keys(files))
		require.NotContains(t, keys(files), filepath.Base(big)+backup.SumSuffix)
		require.Equal(t, before, snapshot(t, dir), "the local backup changed")
		require.Equal(t, 0.0, metrics(t, filepath.Join(tf, backup.OffhostMetricsFile("auth-mysql")))[backup.MetricOffhostLastRunSuccess+"{auth-mysql}"])

		// Readers skip what is not complete: nothing to restore or check.
		res = script(t, append(append([]string{}, env...), tg.env...), "restore-mysql.sh", "--store", "auth-mysql",
			"--port", strconv.Itoa(m.Port), "--from", "remote", "--backup-dir", dir, "--yes",
			"--file", "auth-mysql/auth/"+filepath.Base(big))
		require.Equal(t, 1, res.code, res.out)
		require.Contains(t, res.out, "is not a complete off-host copy")

		res = script(t, append(append([]string{}, env...), tg.env...), "offhost-copy.sh", append(args, "--textfile-dir", tf)...)
		require.Equal(t, 0, res.code, res.out)
		files = remoteFiles(t, tg, "auth-mysql/auth")
		require.Equal(t, []string{filepath.Base(big)}, completeCopies(files))
		require.Len(t, files, 3, "the leftovers of the cut copy are gone: %v", keys(files))
		want, err := os.ReadFile(big)
		require.NoError(t, err)
		require.Equal(t, want, files[filepath.Base(big)])
		require.Equal(t, 1.0, metrics(t, filepath.Join(tf, backup.OffhostMetricsFile("auth-mysql")))[backup.MetricOffhostLastRunSuccess+"{auth-mysql}"])
	})
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A remote that is full, unreachable or not the pinned host fails the run
// loudly (exit 1, the reason, the metric) and deletes nothing anywhere:
// not the local backups, not the older copies on the remote.
func TestOffhostCopyFailsLoudlyAndDeletesNothing(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, start func(...offhosttest.Option) target) {
		// Room for the small backups, not for the big one.
		tg := start(offhosttest.WithFull(1 << 20))
		m, dir, env, args := mysqlBackups(t, 2)
		old := archives(t, dir)
		for i, a := range old {
			age(t, a, time.Duration(100-i)*24*time.Hour)
		}
		tf := t.TempDir()
		env = append(env, tg.env...)
		res := script(t, env, "offhost-copy.sh", append(args, "--textfile-dir", tf, "--keep", "5")...)
		require.Equal(t, 0, res.code, res.out)
		held := remoteFiles(t, tg, "auth-mysql/auth")
		require.Equal(t, names(old), completeCopies(held))
		newestOld, err := backup.ReadMetadata(old[1])
		require.NoError(t, err)
		lastSuccess := float64(newestOld.FinishedAt.Unix())

		big := bigBackup(t, m, dir, env, args)
		before := snapshot(t, dir)
		check := func(t *testing.T, res result, want string) {
			t.Helper()
			require.Equal(t, 1, res.code, res.out)
			require.Contains(t, res.out, want)
			require.Contains(t, res.out, "off-host retention auth-mysql: skipped because the copy failed; nothing deleted")
			require.Equal(t, before, snapshot(t, dir), "a failed off-host copy changed the local backups")
			now := remoteFiles(t, tg, "auth-mysql/auth")
			require.Equal(t, names(old), completeCopies(now), "the old copies must stay when the copy failed")
			require.NotContains(t, completeCopies(now), filepath.Base(big))
			got := metrics(t, filepath.Join(tf, backup.OffhostMetricsFile("auth-mysql")))
			require.Equal(t, 0.0, got[backup.MetricOffhostLastRunSuccess+"{auth-mysql}"])
			require.Equal(t, lastSuccess, got[backup.MetricOffhostLastSuccess+"{auth-mysql}"], "the last good copy still counts")
		}
		strict := append(args, "--textfile-dir", tf, "--keep", "1", "--max-age", "720h")
		t.Run("full", func(t *testing.T) {
			want := map[string]string{"sftp": "a full disk or a quota", "s3": "No space left on device"}[tg.name]
			check(t, script(t, env, "offhost-copy.sh", strict...), want)
		})
		if tg.name == "sftp" {
			t.Run("another host key", func(t *testing.T) {
				other := offhosttest.StartSSH(t)
				wrong := append(append([]string{}, env...), remote.EnvSSHHostKey+"="+other.Fingerprint)
				res := script(t, wrong, "offhost-copy.sh", strict...)
				require.Contains(t, res.out, "not the pinned "+other.Fingerprint)
				require.Equal(t, 1, res.code, res.out)
			})
		}
		t.Run("unreachable", func(t *testing.T) {
			require.NoError(t, tg.stop())
			res := script(t, env, "offhost-copy.sh", strict...)
			require.Equal(t, 1, res.code, res.out)
			require.Contains(t, res.out, "connection refused")
			require.Equal(t, before, snapshot(t, dir))
			got := metrics(t, filepath.Join(tf, backup.OffhostMetricsFile("auth-mysql")))
			require.Equal(t, 0.0, got[backup.MetricOffhostLastRunSuccess+"{auth-mysql}"])
			require.Equal(t, lastSuccess, got[backup.MetricOffhostLastSuccess+"{auth-mysql}"], "kept from the last run that could ask")
		})
	})
}

// The nightly drill run from the off-host copy restores it into a scratch
// server; a copy damaged on the remote fails it (and its metric) while the
// local drill still passes, and --recopy repairs it.
func TestDrillDetectsADamagedOffhostCopy(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, start func(...offhosttest.Option) target) {
		tg := start()
		src, scratch := dbtest.StartMariaDB(t), dbtest.StartMariaDB(t)
		seedAuth(t, src)
		dir, tf := t.TempDir(), t.TempDir()
		env := append(append(mysqlEnv(src, "AUTH"), "SCRATCH_MYSQL_ROOT_PASSWORD="+scratch.Password), tg.env...)
		common := []string{"--store", "auth-mysql", "--port", strconv.Itoa(src.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", tf}
		res := script(t, env, "backup-mysql.sh", common...)
		require.Equal(t, 0, res.code, res.out)
		res = script(t, env, "offhost-copy.sh", common...)
		require.Equal(t, 0, res.code, res.out)
		archive := archives(t, dir)[0]
		drill := append(append([]string{}, common...), "--scratch-port", strconv.Itoa(scratch.Port), "--from", "remote")
		offhostMetric := func() float64 {
			return metrics(t, filepath.Join(tf, backup.OffhostVerifyMetricsFile("auth-mysql")))[backup.MetricOffhostVerifySuccess+"{auth-mysql}"]
		}

		res = script(t, env, "verify-restore.sh", drill...)
		require.Equal(t, 0, res.code, res.out)
		require.Contains(t, res.out, "from the off-host copy on "+tg.name)
		require.Contains(t, res.out, "restores and matches the source")
		require.Equal(t, 1.0, offhostMetric())
		_, err := os.Stat(filepath.Join(tf, backup.VerifyMetricsFile("auth-mysql")))
		require.True(t, os.IsNotExist(err), "the off-host drill wrote the local drill's metrics")

		// One byte of the stored archive changes on the remote's disk, size kept.
		key := "auth-mysql/auth/" + filepath.Base(archive)
		b, err := os.ReadFile(tg.file(key))
		require.NoError(t, err)
		b[len(b)/2] ^= 0x01
		require.NoError(t, os.WriteFile(tg.file(key), b, 0o600))

		res = script(t, env, "verify-restore.sh", drill...)
		require.Equal(t, 1, res.code, res.out)
		require.Contains(t, res.out, filepath.Base(archive)+": sha256")
		require.Contains(t, res.out, "does not match the sidecar")
		require.Equal(t, 0.0, offhostMetric())
		res = script(t, env, "verify-restore.sh", append(append([]string{}, common...), "--scratch-port", strconv.Itoa(scratch.Port))...)
		require.Equal(t, 0, res.code, "the local drill is not affected: %s", res.out)

		res = script(t, env, "offhost-copy.sh", append(common, "--recopy")...)
		require.Equal(t, 0, res.code, res.out)
		res = script(t, env, "verify-restore.sh", drill...)
		require.Equal(t, 0, res.code, res.out)
		require.Equal(t, 1.0, offhostMetric())
		leftovers, err := filepath.Glob(filepath.Join(dir, ".offhost-fetch-*"))
		require.NoError(t, err)
		require.Empty(t, leftovers, "downloads are removed after the check")
	})
}

// With the data server's disk gone, a backup comes back from the off-host
// copy byte for byte: MySQL through SFTP, Redis through S3.
func TestRestoreFromTheOffhostCopy(t *testing.T) {
	t.Parallel()
	t.Run("mysql over sftp", func(t *testing.T) {
		t.Parallel()
		tg := sftpTarget(t)
		m, dir, env, args := mysqlBackups(t, 1)
		before := mysqlFingerprint(t, m, "auth")
		env = append(env, tg.env...)
		res := script(t, env, "offhost-copy.sh", append(args, "--textfile-dir", "-")...)
		require.Equal(t, 0, res.code, res.out)
		name := filepath.Base(archives(t, dir)[0])
		original, err := os.ReadFile(archives(t, dir)[0])
		require.NoError(t, err)
		require.NoError(t, os.RemoveAll(dir)) // the disk is gone
		m.Exec(t, "auth", "DROP TABLE audit; DELETE FROM users")

		res = script(t, env, "list.sh", "--store", "auth-mysql", "--database", "auth", "--from", "remote")
		require.Equal(t, 0, res.code, res.out)
		require.Contains(t, res.out, "auth-mysql/auth/"+name)
		require.Contains(t, res.out, "verified")

		newDisk := t.TempDir()
		// What a restore killed mid-download leaves (a whole dump), and the folder of one still running.
		killed, running := fetchLeftover(t, newDisk, deadPID(t)), fetchLeftover(t, newDisk, livePID(t))
		res = script(t, env, "restore-mysql.sh", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--from", "remote",
			"--backup-dir", newDisk, "--file", "auth-mysql/auth/"+name, "--yes")
		require.Equal(t, 0, res.code, res.out)
		require.Contains(t, res.out, "sha256 of archive and metadata verified")
		require.Equal(t, before, mysqlFingerprint(t, m, "auth"))
		require.Equal(t, original, mustRead(t, tg.file("auth-mysql/auth/"+name)), "the off-host archive is the original, byte for byte")
		require.Equal(t, []string{running}, tree(t, newDisk),
			"the download is removed after the restore, a killed run's (%s) swept, a running one's kept", killed)
	})
	t.Run("redis over s3", func(t *testing.T) {
		t.Parallel()
		tg := s3Target(t)
		r := dbtest.StartRedis(t, fastSync)
		seedRedis(t, r)
		before := redisFingerprint(t, r)
		dir := t.TempDir()
		env := append(redisEnv(r, "AUTH"), tg.env...)
		args := []string{"--store", "auth-redis", "--port", strconv.Itoa(r.Port), "--backup-dir", dir, "--textfile-dir", "-"}
		res := script(t, env, "backup-redis.sh", args...)
		require.Equal(t, 0, res.code, res.out)
		res = script(t, env, "offhost-copy.sh", args...)
		require.Equal(t, 0, res.code, res.out)
		archive := archives(t, dir)[0]
		original := mustRead(t, archive)
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, r.Client(t).FlushAll(context.Background()).Err())

		res = script(t, env, "restore-redis.sh", "--store", "auth-redis", "--port", strconv.Itoa(r.Port), "--from", "remote",
			"--backup-dir", t.TempDir(), "--file", "auth-redis/"+filepath.Base(archive), "--yes")
		require.Equal(t, 0, res.code, res.out)
		require.Equal(t, before, redisFingerprint(t, r))
		require.Equal(t, original, mustRead(t, tg.file("auth-redis/"+filepath.Base(archive))))
	})
}

// fetchLeftover plants a download folder of process pid under dir, as the
// tool names them, holding a dump; it returns the dump's path under dir.
func fetchLeftover(t *testing.T, dir string, pid int) string {
	t.Helper()
	d := filepath.Join(dir, fmt.Sprintf(".offhost-fetch-%d-123", pid))
	require.NoError(t, os.MkdirAll(d, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(d, "dump.sql.gz"), []byte("a whole database"), 0o600))
	rel, err := filepath.Rel(dir, filepath.Join(d, "dump.sql.gz"))
	require.NoError(t, err)
	return rel
}

// deadPID is the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.ProcessState.Pid()
}

// livePID is the pid of a process that runs until the test ends.
func livePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// Neither the S3 secret key nor the SSH private key ever appears on a
// command line or in the output, including when the server refuses them;
// and no child process (mysqldump, redis-server, ...) receives them.
func TestOffhostSecretsNeverShow(t *testing.T) {
	t.Parallel()
	ssh := sftpTarget(t)
	s3 := s3Target(t)
	m, dir, env, args := mysqlBackups(t, 1)
	keyFile := strings.TrimPrefix(ssh.env[1], remote.EnvSSHKeyFile+"=")
	var keyLines []string
	for _, l := range strings.Split(string(mustRead(t, keyFile)), "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			keyLines = append(keyLines, l)
		}
	}
	require.NotEmpty(t, keyLines)
	s3Secret := strings.TrimPrefix(s3.env[3], remote.EnvS3SecretAccessKey+"=")
	secrets := append([]string{s3Secret, m.Password}, keyLines...)
	for _, tg := range []target{ssh, s3} {
		e := append(append([]string{}, env...), tg.env...)
		w := watchProcs(secrets)
		ew := watchEnv(map[string]string{"mariadb-dump": "", "mysqldump": "", "mariadb": "", "mysql": ""}, []string{s3Secret})
		outs := []result{
			script(t, e, "backup-mysql.sh", append(args, "--textfile-dir", "-")...),
			script(t, e, "offhost-copy.sh", append(args, "--textfile-dir", "-")...),
			script(t, e, "restore-mysql.sh", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--from", "remote",
				"--backup-dir", dir, "--yes", "--file", "auth-mysql/auth/"+filepath.Base(archives(t, dir)[0])),
		}
		seen, leaks := w.finish()
		_, envLeaks := ew.finish()
		require.True(t, seen["krgeobuk-backup"], "never sampled the tool at work")
		require.Empty(t, leaks, "%s: a secret on a command line", tg.name)
		require.Empty(t, envLeaks, "%s: a child process received the S3 secret", tg.name)
		for i, r := range outs {
			require.Equal(t, 0, r.code, "%s step %d: %s", tg.name, i, r.out)
			for _, s := range secrets {
				require.NotContains(t, r.out, s, "%s step %d printed a secret", tg.name, i)
			}
		}
	}
	// A refused secret is not echoed either.
	wrong := append(append([]string{}, env...), s3.env[:3]...)
	wrong = append(wrong, remote.EnvS3SecretAccessKey+"=wrong-"+s3Secret)
	res := script(t, wrong, "offhost-copy.sh", append(args, "--textfile-dir", "-")...)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "refused the credentials")
	require.NotContains(t, res.out, s3Secret)
}

// A remote that is this machine's own backup folder (here: an SFTP login
// to this host pointed at it) is refused before anything is copied or
// deleted, whatever address names it.
func TestOffhostRefusesTheLocalFolderUnderAnotherName(t *testing.T) {
	t.Parallel()
	s := offhosttest.StartSSH(t)
	_, dir, env, args := mysqlBackups(t, 2)
	for i, a := range archives(t, dir) {
		age(t, a, time.Duration(100-i)*24*time.Hour)
	}
	before := snapshot(t, dir)
	env = append(env,
		remote.EnvURL+"=sftp://"+s.User+"@localhost:"+strconv.Itoa(s.Port)+dir,
		remote.EnvSSHKeyFile+"="+s.KeyFile,
		remote.EnvSSHHostKey+"="+s.Fingerprint)
	res := script(t, env, "offhost-copy.sh", append(args, "--textfile-dir", "-", "--keep", "1", "--max-age", "24h")...)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "is this machine's backup folder "+dir+" itself")
	require.Equal(t, before, snapshot(t, dir))
}
