package offhosttest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// SSH is a running sshd that serves SFTP from Root to one user, who logs in
// with the private key in KeyFile only.
type SSH struct {
	Port int
	User string
	// Root is the served folder as the server sees it; use Path to reach
	// a file in it from the test.
	Root string
	// KeyFile is the client's private key (mode 0600).
	KeyFile string
	// HostKeyLine is the server's host key as a known_hosts line, and
	// Fingerprint its SHA256: fingerprint: what the backup tool pins.
	HostKeyLine string
	Fingerprint string

	dir     string
	private bool
	once    sync.Once
	proc    *serverproc.Process
}

type serverConfig struct{ full int64 }

// Option changes how StartSSH and StartS3 run their server.
type Option func(*serverConfig)

// WithFull serves from a tmpfs of size bytes, so writes beyond it fail with
// a full disk.
func WithFull(size int64) Option { return func(c *serverConfig) { c.full = size } }

// StartSSH starts sshd -D -e with its own config, host key and
// authorized_keys on a free 127.0.0.1 port and returns once it listens.
func StartSSH(tb testing.TB, opts ...Option) *SSH {
	tb.Helper()
	var cfg serverConfig
	for _, o := range opts {
		o(&cfg)
	}
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		tb.Fatalf("offhosttest: %s not found: install the Debian package openssh-server (make deps)", sshd)
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	s := &SSH{User: u.Username, dir: tb.TempDir(), private: cfg.full > 0}
	s.Root = filepath.Join(s.dir, "root")
	s.KeyFile = filepath.Join(s.dir, "client_key")
	must := func(err error) {
		if err != nil {
			tb.Helper()
			tb.Fatalf("offhosttest: %v", err)
		}
	}
	must(os.Mkdir(s.Root, 0o700))
	hostPub := writeKey(tb, filepath.Join(s.dir, "host_key"))
	clientPub := writeKey(tb, s.KeyFile)
	must(os.WriteFile(filepath.Join(s.dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600))
	// sshd refuses to start without its privilege separation folder, which
	// the Debian service would create.
	if os.Geteuid() == 0 {
		must(os.MkdirAll("/run/sshd", 0o755))
	}
	s.Fingerprint = ssh.FingerprintSHA256(hostPub)
	for i := 1; ; i++ {
		s.Port, err = serverproc.FreePort()
		must(err)
		conf := filepath.Join(s.dir, "sshd_config")
		must(os.WriteFile(conf, []byte(s.config()), 0o600))
		argv := []string{sshd, "-D", "-e", "-f", conf}
		var cmd *exec.Cmd
		if cfg.full > 0 {
			cmd = inPrivateMount(tb, s.Root, cfg.full, argv)
		} else {
			cmd = exec.Command(argv[0], argv[1:]...)
		}
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		s.proc, err = serverproc.Start(cmd, filepath.Join(s.dir, "sshd.log"))
		must(err)
		err = serverproc.WaitReady(s.proc, "sshd"+" on "+s.Addr(), serverproc.Listening(s.Addr()))
		if err == nil {
			break
		}
		_ = s.proc.Stop()
		if i == startTries || !isBindError(err.Error()) {
			tb.Fatalf("offhosttest: start sshd: %v", err)
		}
	}
	s.HostKeyLine = knownhosts.Line([]string{s.Addr()}, hostPub)
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("offhosttest: stop sshd: %v", err)
		}
	})
	return s
}

func (s *SSH) config() string {
	return strings.Join([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.dir, "host_key"),
		"PidFile none",
		"AuthorizedKeysFile " + filepath.Join(s.dir, "authorized_keys"),
		"AuthenticationMethods publickey",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + s.User,
		// The test's temporary folders live under the world-writable /tmp.
		"StrictModes no",
		"UsePAM no",
		"PermitTTY no",
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"Subsystem sftp internal-sftp",
		"LogLevel VERBOSE",
	}, "\n") + "\n"
}

// writeKey writes a new ed25519 private key (OpenSSH format, 0600) and
// returns its public half.
func writeKey(tb testing.TB, path string) ssh.PublicKey {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	return sp
}

// Addr is 127.0.0.1:Port.
func (s *SSH) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the OFFHOST_URL of the served folder.
func (s *SSH) URL() string { return fmt.Sprintf("sftp://%s@%s%s", s.User, s.Addr(), s.Root) }

// Path is where the test reaches a file of the served folder: through the
// server's own mount namespace when it serves a private tmpfs.
func (s *SSH) Path(rel string) string {
	return filepath.Join(s.rootFromHere(), filepath.FromSlash(rel))
}

func (s *SSH) rootFromHere() string {
	if s.private {
		return "/proc/" + strconv.Itoa(s.proc.Pid()) + "/root" + s.Root
	}
	return s.Root
}

// Stop stops sshd and every session it forked; the port then refuses
// connections. Safe to call twice.
func (s *SSH) Stop() error {
	var err error
	s.once.Do(func() { err = s.proc.Stop() })
	return err
}
