package offhosttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
	"github.com/krgeobuk/krgeobuk-infra/internal/toolbuild"
)

// Versitygw is the S3 server the tests run: Versity's S3 gateway
// (Apache-2.0) with its posix backend, which stores every bucket as a folder
// and every object as a file. It is a production gateway, not a test double,
// and it keeps x-amz-checksum-* checksums; it builds from the Go module proxy.
var Versitygw = toolbuild.Program{
	Name:    "versitygw",
	Module:  "github.com/versity/versitygw",
	Version: VersitygwVersion,
	Sum:     "h1:au+wI+aybno/STsQiSm35Uu6Q6iK5MWReQxgO6SEMFc=",
	Package: "./cmd/versitygw",
	Ldflags: "-s -w -X main.Version=" + VersitygwVersion,
	Rerun:   "make s3-server",
}

// VersitygwVersion is the versitygw release the tests run.
const VersitygwVersion = "v1.8.0"

// VersitygwPath is where the built versitygw is cached:
// $KRGEOBUK_CACHE/versitygw/<version>/versitygw (default ~/.cache/krgeobuk).
func VersitygwPath() (string, error) { return Versitygw.Path() }

// EnsureVersitygw builds versitygw into the cache unless it is there.
func EnsureVersitygw(ctx context.Context, logf func(string, ...any)) (string, error) {
	return Versitygw.Ensure(ctx, logf)
}

// S3 is a running versitygw serving one bucket.
type S3 struct {
	Port      int
	Bucket    string
	AccessKey string
	// SecretKey reaches the server through its environment, never argv.
	SecretKey string
	// Data is the posix backend's folder as the server sees it; use Path
	// to reach an object's file from the test.
	Data string

	dir     string
	private bool
	once    sync.Once
	proc    *serverproc.Process
}

// StartS3 starts versitygw on a free 127.0.0.1 port with random root
// credentials and one empty bucket, and returns once the bucket exists.
// WithFull serves from a small private tmpfs, as for StartSSH.
func StartS3(tb testing.TB, opts ...Option) *S3 {
	tb.Helper()
	var cfg serverConfig
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := VersitygwPath()
	if err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	if !toolbuild.IsExecutable(bin) {
		tb.Fatalf("offhosttest: versitygw %s is not built at %s: run make s3-server (make test does)", VersitygwVersion, bin)
	}
	s := &S3{Bucket: "krgeobuk-backups", AccessKey: "access-" + random(6), SecretKey: "secret-" + random(18),
		dir: tb.TempDir(), private: cfg.full > 0}
	s.Data = filepath.Join(s.dir, "data")
	if err := os.Mkdir(s.Data, 0o700); err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	for i := 1; ; i++ {
		if s.Port, err = serverproc.FreePort(); err != nil {
			tb.Fatalf("offhosttest: %v", err)
		}
		argv := []string{bin, "--port", s.Addr(), "posix", s.Data}
		var cmd *exec.Cmd
		if cfg.full > 0 {
			cmd = inPrivateMount(tb, s.Data, cfg.full, argv)
		} else {
			cmd = exec.Command(argv[0], argv[1:]...)
		}
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.dir,
			"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey}
		if s.proc, err = serverproc.Start(cmd, filepath.Join(s.dir, "versitygw.log")); err != nil {
			tb.Fatalf("offhosttest: %v", err)
		}
		err = serverproc.WaitReady(s.proc, "versitygw"+" on "+s.Addr(), serverproc.Listening(s.Addr()))
		if err == nil {
			break
		}
		_ = s.proc.Stop()
		if i == startTries || !isBindError(err.Error()) {
			tb.Fatalf("offhosttest: start versitygw: %v", err)
		}
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("offhosttest: stop versitygw: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), serverproc.ReadyTimeout)
	defer cancel()
	if err := s.Client(tb).MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		tb.Fatalf("offhosttest: create bucket: %v\n%s", err, s.proc.LogTail())
	}
	return s
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Addr is 127.0.0.1:Port; Endpoint the URL the backup tool is given.
func (s *S3) Addr() string     { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }
func (s *S3) Endpoint() string { return "http://" + s.Addr() }

// Client is an S3 client with the root credentials, for the test's own
// look at the bucket.
func (s *S3) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := minio.New(s.Addr(), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		BucketLookup: minio.BucketLookupPath,
		Region:       "us-east-1",
	})
	if err != nil {
		tb.Fatalf("offhosttest: %v", err)
	}
	return c
}

// Path is the file that holds object key of the bucket.
func (s *S3) Path(key string) string {
	root := s.Data
	if s.private {
		root = "/proc/" + strconv.Itoa(s.proc.Pid()) + "/root" + s.Data
	}
	return filepath.Join(root, s.Bucket, filepath.FromSlash(key))
}

// Stop stops the server; its port then refuses connections. Safe twice.
func (s *S3) Stop() error {
	var err error
	s.once.Do(func() { err = s.proc.Stop() })
	return err
}
