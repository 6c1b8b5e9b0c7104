package registrytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// Registry is a running distribution registry.
type Registry struct {
	// Host is "127.0.0.1:<port>", as image references name it.
	Host string
	// Username and Password are its one account.
	Username, Password string
	// CAPEM is the CA its certificate chains to; CAFile holds it.
	CAPEM  []byte
	CAFile string

	setup *Setup
	proc  *serverproc.Process
	once  sync.Once
}

type options struct {
	listen             string
	names              []string
	username, password string
}

// Option changes how Start lays out the registry.
type Option func(*options)

// Listen makes the registry listen on ip (a free port of it) instead of
// 127.0.0.1.
func Listen(ip string) Option { return func(o *options) { o.listen = ip } }

// Names adds host names or IPs to the certificate.
func Names(names ...string) Option { return func(o *options) { o.names = append(o.names, names...) } }

// Account sets the user and password instead of random ones.
func Account(username, password string) Option {
	return func(o *options) { o.username, o.password = username, password }
}

// startTries bounds the starts of one registry: a free port can be taken
// before the registry binds it.
const startTries = 3

// Start runs the cached registry (make registry-server builds it) on a free
// port and returns once /v2/ answers 401 over TLS; the test's cleanup stops
// it.
func Start(tb testing.TB, opts ...Option) *Registry {
	tb.Helper()
	o := options{listen: "127.0.0.1"}
	for _, opt := range opts {
		opt(&o)
	}
	bin, built, err := Server.Built()
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	if !built {
		tb.Fatalf("registrytest: registry %s is not built at %s: run make registry-server (make test does)", Version, bin)
	}
	for i := 1; ; i++ {
		port, err := serverproc.FreePort()
		if err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
		dir := filepath.Join(tb.TempDir(), "registry")
		s, err := Write(dir, Settings{Addr: net.JoinHostPort(o.listen, strconv.Itoa(port)), Names: o.names,
			Username: o.username, Password: o.password})
		if err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
		r := &Registry{Host: s.Host, Username: s.Username, Password: s.Password, CAPEM: s.CAPEM, CAFile: s.CAFile, setup: s}
		if r.proc, err = serverproc.Start(s.Command(bin), filepath.Join(dir, "registry.log")); err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
		err = serverproc.WaitReady(r.proc, "registry on "+r.Host, r.answers401)
		if err == nil {
			tb.Cleanup(func() {
				if err := r.Stop(); err != nil {
					tb.Errorf("registrytest: stop registry: %v", err)
				}
			})
			return r
		}
		_ = r.proc.Stop()
		if i == startTries || !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			tb.Fatalf("registrytest: start registry: %v", err)
		}
	}
}

// answers401 is the readiness ping: the registry serves TLS with our
// certificate and asks for credentials.
func (r *Registry) answers401(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.Host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: r.Transport()}).Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("GET /v2/ answered %s, want 401", resp.Status)
	}
	return nil
}

// Pool is the system's trusted CAs plus the registry's.
func (r *Registry) Pool() *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(r.CAPEM)
	return pool
}

// Transport is an HTTP transport that trusts the registry's CA.
func (r *Registry) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: r.Pool(), MinVersion: tls.VersionTLS12}
	return t
}

// Auth is the registry's account as go-containerregistry takes it.
func (r *Registry) Auth() authn.Authenticator {
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// Options are go-containerregistry options with the account and the CA.
func (r *Registry) Options(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(r.Auth()), remote.WithTransport(r.Transport())}
}

// Ref parses "repo:tag" or "repo@digest" under this registry.
func (r *Registry) Ref(tb testing.TB, repoAndTag string) name.Reference {
	tb.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repoAndTag, name.StrictValidation)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	return ref
}

// PasswordFile writes the password into a file of the test's (0600), for a
// --password-file style flag.
func (r *Registry) PasswordFile(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "registry-password")
	if err := os.WriteFile(p, []byte(r.Password), 0o600); err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	return p
}

// LogTail is the end of the registry's log, for failure messages.
func (r *Registry) LogTail() string { return r.proc.LogTail() }

// Stop stops the registry. Safe twice.
func (r *Registry) Stop() error {
	var err error
	r.once.Do(func() { err = r.proc.Stop() })
	return err
}
