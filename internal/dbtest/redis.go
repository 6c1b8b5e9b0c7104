package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// Redis is a running redis-server owned by one test, requiring Password.
type Redis struct {
	Host     string
	Port     int
	Password string
	// Dir is the server's working directory (config, RDB, AOF, log).
	Dir string

	tb    testing.TB
	bin   string
	conf  string
	place place
	g     guard
	proc  *serverproc.Process
}

type redisConfig struct {
	aof   bool
	extra []string
	place place
}

// RedisOption changes how StartRedis configures the server.
type RedisOption func(*redisConfig)

// WithAOF turns on the append-only file (appendonly yes), as on the data
// server.
func WithAOF() RedisOption { return func(c *redisConfig) { c.aof = true } }

// WithRedisConfig appends raw redis.conf lines.
func WithRedisConfig(lines ...string) RedisOption {
	return func(c *redisConfig) { c.extra = append(c.extra, lines...) }
}

// StartRedis starts a fresh redis-server on a free loopback port with a
// random requirepass and returns once an authenticated PING answers. The
// password lives in the config file, not on the command line. t.Cleanup
// stops the server.
func StartRedis(tb testing.TB, opts ...RedisOption) *Redis {
	tb.Helper()
	var cfg redisConfig
	for _, o := range opts {
		o(&cfg)
	}
	r := &Redis{
		Host:     cfg.place.addr(),
		Password: randomSecret(),
		Dir:      tb.TempDir(),
		place:    cfg.place,
		tb:       tb,
		bin:      lookBinary(tb, "redis-server", "redis-server"),
	}
	r.conf = filepath.Join(r.Dir, "redis.conf")
	var err error
	const attempts = 3
	for i := 1; ; i++ {
		if r.Port, err = serverproc.FreePort(); err != nil {
			tb.Fatalf("dbtest: %v", err)
		}
		if err = r.writeConfig(cfg); err != nil {
			tb.Fatalf("dbtest: %v", err)
		}
		err = r.start()
		if err == nil {
			break
		}
		if i == attempts || !isBindError(err.Error()) {
			tb.Fatalf("dbtest: start Redis: %v", err)
		}
	}
	tb.Cleanup(func() {
		if tb.Failed() && r.proc != nil {
			tb.Logf("dbtest: Redis on port %d, end of its log:\n%s", r.Port, r.proc.LogTail())
		}
		if err := r.stop(); err != nil {
			tb.Errorf("dbtest: stop Redis on port %d: %v", r.Port, err)
		}
	})
	return r
}

func (r *Redis) writeConfig(cfg redisConfig) error {
	appendonly := "no"
	if cfg.aof {
		appendonly = "yes"
	}
	lines := []string{
		"bind " + r.Host,
		"port " + strconv.Itoa(r.Port),
		"protected-mode yes",
		"daemonize no",
		"dir " + r.Dir,
		"logfile " + filepath.Join(r.Dir, "redis.log"),
		"requirepass " + r.Password,
		"appendonly " + appendonly,
		"save \"\"",
	}
	lines = append(lines, cfg.extra...)
	if err := os.WriteFile(r.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write redis.conf: %w", err)
	}
	return nil
}

func (r *Redis) start() error {
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.proc != nil && !r.proc.Exited() {
		return nil
	}
	p, err := serverproc.Start(r.place.command(r.bin, r.conf), filepath.Join(r.Dir, "redis.log"))
	if err != nil {
		return err
	}
	r.proc = p
	c := r.client()
	defer func() { _ = c.Close() }()
	err = serverproc.WaitReady(p, "redis-server on "+r.Addr(), func(ctx context.Context) error {
		return c.Ping(ctx).Err()
	})
	if err != nil {
		_ = p.Stop()
	}
	return err
}

func (r *Redis) stop() error {
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	return r.proc.Stop()
}

// Stop shuts the server down (SIGTERM, which saves nothing with save "" and
// fsyncs the AOF when it is on); its directory stays.
func (r *Redis) Stop() {
	r.tb.Helper()
	if err := r.stop(); err != nil {
		r.tb.Fatalf("dbtest: stop Redis on port %d: %v", r.Port, err)
	}
}

// Start starts a stopped server again on the same port and directory.
func (r *Redis) Start() {
	r.tb.Helper()
	if err := r.start(); err != nil {
		r.tb.Fatalf("dbtest: restart Redis on port %d: %v", r.Port, err)
	}
}

// Addr is host:port for clients.
func (r *Redis) Addr() string { return fmt.Sprintf("%s:%d", r.Host, r.Port) }

func (r *Redis) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, MaxRetries: -1, DisableIdentity: true, Dialer: r.place.dial()})
}

// Client returns an authenticated client, closed by t.Cleanup.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := r.client()
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
