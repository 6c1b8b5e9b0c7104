// Package registrytest runs the CNCF distribution registry (v3, built from
// the Go module proxy into the cache) as the tests' OCI registry: over TLS
// with a certificate from a throwaway CA, behind htpasswd basic auth with a
// random user and password, storing blobs in a temp folder. It is the real
// registry many companies run, so credentials, CAs and the errors a
// pipeline gets from a registry that checks them are proven, not assumed.
package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/krgeobuk/krgeobuk-infra/internal/toolbuild"
)

// Version is the distribution release the tests run.
const Version = "v3.1.2"

// Server is the registry program: github.com/distribution/distribution/v3's
// cmd/registry, cached at $KRGEOBUK_CACHE/registry/<version>/registry.
// v3.1.2 does not serve the OCI 1.1 referrers API (/v2/<name>/referrers/
// <digest> answers 404): clients fall back to the tag schema sha256-<hex>
// (TestReferrersFallBackToTheTagSchema).
var Server = toolbuild.Program{
	Name:    "registry",
	Module:  "github.com/distribution/distribution/v3",
	Version: Version,
	Sum:     "h1:/Bv2YIqqSR00HiO49FT93hovy6r9IlrzwUDsJjCN5qg=",
	Package: "./cmd/registry",
	Ldflags: "-s -w -X github.com/distribution/distribution/v3/version.version=" + Version,
	Rerun:   "make registry-server",
}

// Settings are what Write needs to lay out one registry.
type Settings struct {
	// Addr is the host:port the registry listens on ("127.0.0.1:5000",
	// "10.87.0.1:5000" inside the engine's network namespace).
	Addr string
	// Names are host names and IPs the certificate names besides 127.0.0.1,
	// ::1, localhost and Addr's host.
	Names []string
	// Username and Password are the one account; random when empty.
	Username, Password string
	// CertValidity bounds the CA and the server certificate; a day when zero.
	CertValidity time.Duration
}

// Setup is one registry laid out in a folder, ready to start.
type Setup struct {
	// Dir holds config.yml, the certificate and key, the CA, the htpasswd
	// file and the storage folder.
	Dir string
	// Config is the registry's config.yml.
	Config string
	// Host is Addr as clients name the registry.
	Host               string
	Username, Password string
	// CAPEM is the CA that signed the server certificate, PEM encoded;
	// CAFile holds the same bytes.
	CAPEM  []byte
	CAFile string
}

// Write lays out a registry in dir (created if missing) without starting
// it: a config.yml with filesystem storage in dir/storage, deletes enabled,
// TLS with a certificate for the registry's names signed by a fresh CA, and
// htpasswd auth for one user (bcrypt). The password is in no file: only its
// hash is. Start it with Setup.Command.
func Write(dir string, s Settings) (*Setup, error) {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return nil, fmt.Errorf("registry address %q: want host:port: %w", s.Addr, err)
	}
	if s.Username == "" {
		s.Username = "ci-" + randomHex(4)
	}
	if s.Password == "" {
		s.Password = randomHex(16)
	}
	if s.CertValidity == 0 {
		s.CertValidity = 24 * time.Hour
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o700); err != nil {
		return nil, fmt.Errorf("registry folder: %w", err)
	}
	caPEM, certPEM, keyPEM, err := certificates(append([]string{"127.0.0.1", "::1", "localhost", host}, s.Names...), s.CertValidity)
	if err != nil {
		return nil, err
	}
	// Cost 4 (the minimum): the registry checks the password on every
	// request, and the hash guards a throwaway account.
	hash, err := bcrypt.GenerateFromPassword([]byte(s.Password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	su := &Setup{Dir: dir, Config: filepath.Join(dir, "config.yml"), Host: s.Addr,
		Username: s.Username, Password: s.Password, CAPEM: caPEM, CAFile: filepath.Join(dir, "ca.pem")}
	files := map[string][]byte{
		"ca.pem":   caPEM,
		"cert.pem": certPEM,
		"key.pem":  keyPEM,
		"htpasswd": []byte(s.Username + ":" + string(hash) + "\n"),
		"config.yml": []byte(fmt.Sprintf(config, filepath.Join(dir, "storage"), s.Addr,
			filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "htpasswd"))),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, fmt.Errorf("registry %s: %w", name, err)
		}
	}
	return su, nil
}

// config is distribution's config.yml. No http.secret: one instance signs
// its own upload state with a random one. Distribution v3.1.2 has no switch
// for the referrers API (it does not serve it).
const config = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: krgeobuk-test-registry
    path: %s
`

// Command is the registry serving this setup, run by bin (Server's path).
// Tracing export is off: distribution exports spans over OTLP by default.
func (s *Setup) Command(bin string) *exec.Cmd {
	cmd := exec.Command(bin, "serve", s.Config)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.Dir, "OTEL_TRACES_EXPORTER=none"}
	return cmd
}

// certificates makes a CA and a server certificate it signs for names (IPs
// or DNS names), PEM encoded.
func certificates(names []string, validity time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "krgeobuk test registry CA " + randomHex(4)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
