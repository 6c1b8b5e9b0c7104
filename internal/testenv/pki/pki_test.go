package pki_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/pki"
)

func TestIssuedCertificatesVerifyAndKeysStayPrivate(t *testing.T) {
	ca, err := pki.New(t.TempDir(), "test-ca")
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue("server", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "server"},
		IPAddresses: []net.IP{net.ParseIP("10.200.0.2")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	require.NoError(t, err)
	require.Contains(t, string(keyPEM), "EC PRIVATE KEY")
	require.NoError(t, ca.ServiceAccountKey())

	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err = cert.Verify(x509.VerifyOptions{DNSName: "10.200.0.2", Roots: roots})
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{DNSName: "10.200.0.3", Roots: roots})
	require.Error(t, err, "valid only for the names it was issued for")

	entries, err := os.ReadDir(ca.Dir)
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s is readable by others", e.Name())
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"ca.crt", "server.crt", "server.key", "sa.key", "sa.pub"}, names)
}
