package realnode

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/pki"
)

// identity is a client certificate: the user and groups the API server
// sees.
type identity struct {
	file   string
	user   string
	groups []string
}

// clientIdentities are the cluster's client certificates. The kubelet's
// user and group are what the Node authorizer and NodeRestriction admit;
// kube-proxy's, the controller-manager's and the scheduler's users are
// bound by the API server's bootstrap policy. (CoreDNS runs as a pod with a
// ServiceAccount of its own.)
func clientIdentities(node string) []identity {
	return []identity{
		{file: "admin", user: "krgeobuk-realnode-admin", groups: []string{"system:masters"}},
		{file: "kubelet", user: "system:node:" + node, groups: []string{"system:nodes"}},
		{file: "kube-proxy", user: "system:kube-proxy"},
		{file: "controller-manager", user: "system:kube-controller-manager"},
		{file: "scheduler", user: "system:kube-scheduler"},
	}
}

// newPKI creates the CA, the API server's serving certificate (valid for
// loopback, the node IP and the kubernetes Service's names and IP), the
// kubelet's, one for the controllers' secure ports, the client
// certificates and the service-account signing key.
func newPKI(dir, node string) (*pki.CA, error) {
	ca, err := pki.New(dir, "krgeobuk-realnode-ca")
	if err != nil {
		return nil, err
	}
	loopback, nodeIP := net.ParseIP("127.0.0.1"), net.ParseIP(NodeIP)
	servers := map[string]*x509.Certificate{
		"apiserver": {
			Subject:     pkix.Name{CommonName: "kube-apiserver"},
			DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + ClusterDomain},
			IPAddresses: []net.IP{loopback, nodeIP, net.ParseIP(apiServiceIP)},
		},
		"kubelet-serving": {
			Subject:     pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
			DNSNames:    []string{node, "localhost"},
			IPAddresses: []net.IP{loopback, nodeIP},
		},
		"components": {
			Subject:     pkix.Name{CommonName: "krgeobuk-realnode-components"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{loopback},
		},
	}
	for name, tmpl := range servers {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if _, _, err := ca.Issue(name, tmpl); err != nil {
			return nil, err
		}
	}
	for _, id := range clientIdentities(node) {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: id.user, Organization: id.groups},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if _, _, err := ca.Issue(id.file, tmpl); err != nil {
			return nil, err
		}
	}
	return ca, ca.ServiceAccountKey()
}
