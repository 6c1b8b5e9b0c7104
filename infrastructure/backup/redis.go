package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-retry"
)

// Budgets for the local Redis that reads a snapshot.
const (
	readerReadyTimeout = 2 * time.Minute // loading a large RDB takes a while
	readerStopTimeout  = 30 * time.Second
	copyBatch          = 500
)

func redisClient(addr, network, password string, db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Network: network, Addr: addr, Password: password, DB: db,
		DisableIdentity: true, MaxRetries: -1,
		DialTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
	})
}

func targetClient(t Target, db int) *redis.Client {
	return redisClient(t.Addr(), "tcp", t.Password, db)
}

// keyspace returns the databases holding keys and their key counts, from
// INFO keyspace.
func keyspace(ctx context.Context, c *redis.Client) (map[int]int64, error) {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "db") {
			continue
		}
		db, err := strconv.Atoi(strings.TrimPrefix(name, "db"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if k, v, _ := strings.Cut(kv, "="); k == "keys" {
				out[db], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out, nil
}

func totalKeys(ks map[int]int64) int64 {
	var n int64
	for _, v := range ks {
		n += v
	}
	return n
}

// SnapshotRedis takes a point-in-time RDB snapshot of t over the replication
// protocol (redis-cli --rdb), the same snapshot a replica would receive.
// The archive appears only after redis-cli exited 0 and redis-check-rdb
// accepts the file.
func SnapshotRedis(ctx context.Context, t Target, root string, now time.Time) (Backup, error) {
	fail := func(err error) (Backup, error) {
		return Backup{}, fmt.Errorf("snapshot %s: %s", t.Store.Name, redact(err.Error(), t.Password))
	}
	meta := Metadata{Store: t.Store.Name, Engine: "redis", Mode: mode(t), StartedAt: now.UTC()}
	c := targetClient(t, 0)
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return fail(err)
	}
	meta.ServerVersion = infoField(info, "redis_version")
	if ks, err := keyspace(ctx, c); err == nil {
		meta.Keys = totalKeys(ks)
	}
	// redis-cli --rdb writes a clean file only to a path: to stdout it also
	// emits the 40-byte end marker of a diskless transfer. So the snapshot
	// lands in a private file first and is then copied into the archive.
	produce := func(w io.Writer) error {
		return fetchRDB(ctx, t, w)
	}
	name := archiveName(t.Store.Name, "", ".rdb", now)
	b, err := writeArtifact(SeriesDir(root, t.Store.Name, ""), name, meta, produce, CheckRDB)
	if err != nil {
		return fail(err)
	}
	return b, nil
}

// fetchRDB runs redis-cli --rdb into a private temporary file (inside the
// container in container mode) and copies the result to w.
func fetchRDB(ctx context.Context, t Target, w io.Writer) error {
	run := func(cmd *exec.Cmd) error {
		stderr := &tailBuffer{max: 4096}
		cmd.Stderr = stderr
		if cmd.Stdout == nil {
			cmd.Stdout = io.Discard
		}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s failed: %w: %s", filepath.Base(cmd.Path), err, stderr.String())
		}
		return nil
	}
	if t.Container != "" {
		remote := "/tmp/krgeobuk-backup-" + randomSuffix() + ".rdb"
		cmd, err := redisCLI(ctx, t, "--rdb", remote)
		if err != nil {
			return err
		}
		defer func() {
			rm := exec.Command("docker", "exec", t.Container, "rm", "-f", remote)
			rm.Env = childEnv()
			_ = rm.Run()
		}()
		if err := run(cmd); err != nil {
			return err
		}
		cat := exec.CommandContext(ctx, "docker", "exec", t.Container, "cat", remote)
		cat.Env = childEnv()
		cat.Stdout = w
		return run(cat)
	}
	dir, err := os.MkdirTemp("", "krgeobuk-rdb-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	local := filepath.Join(dir, "snapshot.rdb")
	cmd, err := redisCLI(ctx, t, "--rdb", local)
	if err != nil {
		return err
	}
	if err := run(cmd); err != nil {
		return err
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	_, err = io.Copy(w, f)
	return err
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			return v
		}
	}
	return ""
}

// CheckRDB checks the file starts like an RDB and that redis-check-rdb,
// which walks every entry and its CRC64, accepts it. Failures wrap
// ErrCorrupt.
func CheckRDB(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	head, tail := make([]byte, 9), make([]byte, 9)
	_, herr := io.ReadFull(f, head)
	_, terr := f.ReadAt(tail, mustSize(f)-9)
	_ = f.Close()
	if herr != nil || terr != nil || !bytes.HasPrefix(head, []byte("REDIS")) {
		return fmt.Errorf("not an RDB file (no REDIS header): %w", ErrCorrupt)
	}
	// An RDB ends with the EOF opcode and an 8-byte checksum; redis-check-rdb
	// stops reading there and would accept trailing bytes.
	if tail[0] != 0xff {
		return fmt.Errorf("RDB does not end with the EOF opcode and checksum: %w", ErrCorrupt)
	}
	bin, err := lookTool("redis-check-rdb")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	check := exec.CommandContext(ctx, bin, path)
	check.Env = childEnv()
	out, err := check.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("RDB looks OK")) {
		return fmt.Errorf("redis-check-rdb: %s: %w", rdbError(string(out)), ErrCorrupt)
	}
	return nil
}

// rdbError picks the line naming the problem out of redis-check-rdb's report.
func rdbError(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, l := range lines {
		if strings.Contains(l, "RDB ERROR DETECTED") && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return lastLine(out)
}

func mustSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// rdbReader is a private redis-server loaded from a snapshot, reachable only
// through a unix socket in a 0700 directory, that a restore or a check reads
// keys from.
type rdbReader struct {
	dir  string
	sock string
	cmd  *exec.Cmd
	done chan struct{}
}

func startReader(ctx context.Context, archive string) (*rdbReader, error) {
	bin, err := lookTool("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "krgeobuk-rdb-reader-")
	if err != nil {
		return nil, err
	}
	r := &rdbReader{dir: dir, sock: filepath.Join(dir, "redis.sock"), done: make(chan struct{})}
	fail := func(err error) (*rdbReader, error) {
		r.stop()
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fail(err)
	}
	if err := copyFile(archive, filepath.Join(dir, "dump.rdb")); err != nil {
		return fail(err)
	}
	conf := strings.Join([]string{
		"port 0", "unixsocket " + r.sock, "unixsocketperm 700",
		"dir " + dir, "dbfilename dump.rdb", "appendonly no", `save ""`,
		"logfile " + filepath.Join(dir, "redis.log"), "databases 16",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(conf), 0o600); err != nil {
		return fail(err)
	}
	r.cmd = exec.Command(bin, filepath.Join(dir, "redis.conf"))
	r.cmd.Env = childEnv()
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start redis-server to read the snapshot: %w", err))
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	c := r.client(0)
	defer func() { _ = c.Close() }()
	rctx, cancel := context.WithTimeout(ctx, readerReadyTimeout)
	defer cancel()
	err = retry.Do(rctx, retry.NewConstant(50*time.Millisecond), func(ctx context.Context) error {
		select {
		case <-r.done:
			return errors.New("redis-server exited while loading the snapshot: " + r.logTail())
		default:
		}
		return retry.RetryableError(c.Ping(ctx).Err()) // LOADING until the RDB is in
	})
	if err != nil {
		return fail(fmt.Errorf("read snapshot %s: %w", filepath.Base(archive), err))
	}
	return r, nil
}

func (r *rdbReader) client(db int) *redis.Client { return redisClient(r.sock, "unix", "", db) }

func (r *rdbReader) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	return lastLine(string(b))
}

func (r *rdbReader) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(readerStopTimeout):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	}
	_ = os.RemoveAll(r.dir)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// copyKeys copies every key of every database from src to dst with DUMP and
// RESTORE ... ABSTTL REPLACE: exact values, encodings, and absolute expiry
// times. It returns the number of keys copied.
func copyKeys(ctx context.Context, src func(db int) *redis.Client, dst func(db int) *redis.Client, dbs []int) (int64, error) {
	var copied int64
	for _, db := range dbs {
		s, d := src(db), dst(db)
		err := func() error {
			defer func() { _ = s.Close(); _ = d.Close() }()
			var cursor uint64
			for {
				keys, next, err := s.Scan(ctx, cursor, "*", copyBatch).Result()
				if err != nil {
					return err
				}
				if len(keys) > 0 {
					n, err := copyBatchKeys(ctx, s, d, keys)
					if err != nil {
						return err
					}
					copied += n
				}
				if next == 0 {
					return nil
				}
				cursor = next
			}
		}()
		if err != nil {
			return copied, fmt.Errorf("db%d: %w", db, err)
		}
	}
	return copied, nil
}

func copyBatchKeys(ctx context.Context, s, d *redis.Client, keys []string) (int64, error) {
	pipe := s.Pipeline()
	dumps := make([]*redis.StringCmd, len(keys))
	expiries := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		dumps[i] = pipe.Dump(ctx, k)
		expiries[i] = pipe.PExpireTime(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	out := d.Pipeline()
	var n int64
	for i, k := range keys {
		payload, err := dumps[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // expired between SCAN and DUMP
		}
		if err != nil {
			return 0, err
		}
		var at int64 // 0 = no expiry
		if e := expiries[i].Val(); e > 0 {
			at = e.Milliseconds()
		}
		out.Do(ctx, "RESTORE", k, at, payload, "REPLACE", "ABSTTL")
		n++
	}
	if _, err := out.Exec(ctx); err != nil {
		return 0, err
	}
	return n, nil
}

// keyValue reads a key's type, expiry and value in a canonical text form.
func keyValue(ctx context.Context, c *redis.Client, key string) (string, error) {
	typ, err := c.Type(ctx, key).Result()
	if err != nil {
		return "", err
	}
	exp, err := c.PExpireTime(ctx, key).Result()
	if err != nil {
		return "", err
	}
	var val any
	switch typ {
	case "none":
		return "missing", nil
	case "string":
		val, err = c.Get(ctx, key).Result()
	case "list":
		val, err = c.LRange(ctx, key, 0, -1).Result()
	case "set":
		var m []string
		m, err = c.SMembers(ctx, key).Result()
		sort.Strings(m)
		val = m
	case "zset":
		val, err = c.ZRangeWithScores(ctx, key, 0, -1).Result()
	case "hash":
		var h map[string]string
		h, err = c.HGetAll(ctx, key).Result()
		val = h // fmt prints maps sorted by key
	case "stream":
		val, err = c.XRange(ctx, key, "-", "+").Result()
	default:
		val, err = c.Dump(ctx, key).Result()
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s expire=%d %v", typ, exp.Milliseconds(), val), nil
}

// compareRedis compares every key of every database of two instances:
// type, value and absolute expiry. A differing or missing key is a data
// difference; at most limit are listed.
func compareRedis(ctx context.Context, a, b func(db int) *redis.Client, limit int) (Differences, error) {
	var d Differences
	ca, cb := a(0), b(0)
	ksA, err := keyspace(ctx, ca)
	_ = ca.Close()
	if err != nil {
		return d, err
	}
	ksB, err := keyspace(ctx, cb)
	_ = cb.Close()
	if err != nil {
		return d, err
	}
	dbs := map[int]bool{}
	for db := range ksA {
		dbs[db] = true
	}
	for db := range ksB {
		dbs[db] = true
	}
	note := func(format string, args ...any) {
		if len(d.Data) < limit {
			d.Data = append(d.Data, fmt.Sprintf(format, args...))
		}
	}
	for db := range dbs {
		if ksA[db] != ksB[db] {
			note("db%d: %d keys in the source, %d restored", db, ksA[db], ksB[db])
		}
		sa, sb := a(db), b(db)
		err := func() error {
			defer func() { _ = sa.Close(); _ = sb.Close() }()
			var cursor uint64
			for {
				keys, next, err := sa.Scan(ctx, cursor, "*", copyBatch).Result()
				if err != nil {
					return err
				}
				for _, k := range keys {
					va, err := keyValue(ctx, sa, k)
					if err != nil {
						return err
					}
					vb, err := keyValue(ctx, sb, k)
					if err != nil {
						return err
					}
					if va != vb {
						note("db%d key %q differs", db, k)
					}
				}
				if next == 0 {
					return nil
				}
				cursor = next
			}
		}()
		if err != nil {
			return d, fmt.Errorf("db%d: %w", db, err)
		}
	}
	sort.Strings(d.Data)
	return d, nil
}

func dbList(ks map[int]int64) []int {
	var out []int
	for db := range ks {
		out = append(out, db)
	}
	sort.Ints(out)
	return out
}
