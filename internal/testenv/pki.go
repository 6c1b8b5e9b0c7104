package testenv

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/pki"
)

// clusterPKI is the cluster's certificate authority and the keys signed by
// it, in the cluster's pki folder.
type clusterPKI struct {
	*pki.CA
	adminCertPEM, adminKeyPEM []byte
}

// newPKI creates a CA, one serving certificate for every loopback server of
// the cluster, an admin client certificate (group system:masters) and the
// service-account signing key.
func newPKI(dir string) (*clusterPKI, error) {
	ca, err := pki.New(dir, "krgeobuk-testenv-ca")
	if err != nil {
		return nil, err
	}
	p := &clusterPKI{CA: ca}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceIP)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, _, err := ca.Issue("serving", serving); err != nil {
		return nil, err
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "krgeobuk-testenv-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.adminCertPEM, p.adminKeyPEM, err = ca.Issue("admin", admin); err != nil {
		return nil, err
	}
	if err := ca.ServiceAccountKey(); err != nil {
		return nil, err
	}
	return p, nil
}
