package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// probe GETs url and wants 200 with a body containing want.
func probe(ctx context.Context, client *http.Client, url, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (c *Cluster) etcdHealthy(ctx context.Context) error {
	return probe(ctx, http.DefaultClient, "http://127.0.0.1:"+strconv.Itoa(c.ports.etcd)+"/health", `"health":"true"`)
}

// apiserverReady asks /readyz, which turns 200 only after every post-start
// hook (RBAC bootstrap, system priority classes, ...) has run.
func (c *Cluster) apiserverReady(ctx context.Context) error {
	body, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("readyz: %w: %s", err, body)
	}
	return nil
}

// componentHealthy probes the /healthz of a server using the cluster's
// serving certificate (scheduler, controller manager).
func (c *Cluster) componentHealthy(port int) func(context.Context) error {
	pool := x509.NewCertPool()
	pool.AddCert(c.pki.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	return func(ctx context.Context) error { return probe(ctx, client, url, "ok") }
}
