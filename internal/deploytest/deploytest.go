// Package deploytest provides the real components a deploy needs where the
// simulated cluster has none: an OCI registry (go-containerregistry's
// registry, served over HTTP on loopback) holding synthetic images of the
// four services, and one local HTTP server per API standing in for its
// readiness endpoint, since kwok's pods run nothing. Tests, the benchmark
// and `make demo` share them.
package deploytest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
)

// Registry is an in-process OCI registry on a loopback port.
type Registry struct {
	// Host is host:port; image references are Host/krgeobuk/<service>.
	Host string
	srv  *httptest.Server
	// fail503 makes the next N manifest reads answer 503 (-1: all of them).
	fail503  atomic.Int64
	manifest atomic.Int64
}

// NewRegistry starts a registry. Close stops it.
func NewRegistry() *Registry {
	r := &Registry{}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/manifests/") && req.Method != http.MethodPut {
			r.manifest.Add(1)
			if n := r.fail503.Load(); n != 0 {
				if n > 0 {
					r.fail503.Add(-1)
				}
				http.Error(w, "registry overloaded", http.StatusServiceUnavailable)
				return
			}
		}
		inner.ServeHTTP(w, req)
	}))
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Fail503 makes the next n manifest reads answer 503 Service Unavailable;
// n < 0 makes every one fail until Fail503(0).
func (r *Registry) Fail503(n int64) { r.fail503.Store(n) }

// ManifestReads counts manifest reads (HEAD and GET) so far.
func (r *Registry) ManifestReads() int64 { return r.manifest.Load() }

// Repository is the repository a service's image is pushed to.
func (r *Registry) Repository(service string) string { return r.Host + "/krgeobuk/" + service }

// Publish pushes a fresh synthetic image (a random 1 KiB layer) for each
// service, tagged version, and returns the references by digest, as the
// publish step of the pipeline would.
func (r *Registry) Publish(version string, services ...string) (map[string]string, error) {
	if len(services) == 0 {
		services = catalog.Names()
	}
	out := map[string]string{}
	for _, s := range services {
		img, err := random.Image(1024, 1)
		if err != nil {
			return nil, err
		}
		ref, err := name.NewTag(r.Repository(s) + ":" + version)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(ref, img); err != nil {
			return nil, fmt.Errorf("push %s: %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		out[s] = r.Repository(s) + "@" + d.String()
	}
	return out, nil
}

// ReadinessAnnotation, set through a service's podAnnotations, tells the
// stand-in API how to answer /health/ready while that pod template is the
// Deployment's current one: "fail" answers 503, anything else 200.
const ReadinessAnnotation = "deploytest.krgeobuk.dev/readiness"

// defaultFailBody is what a failing stand-in answers: what a NestJS API
// whose database is unreachable would say.
const defaultFailBody = "mysql: connect ECONNREFUSED 10.10.0.10:3307"

// Apps runs one HTTP server per API. Each answers GET /health/ready by
// looking at its Deployment in the cluster: the pod template annotation
// ReadinessAnnotation decides, so rolling back the template heals the
// endpoint exactly as a real rollback would. It implements gate.Endpoints.
type Apps struct {
	cs       kubernetes.Interface
	mu       sync.Mutex
	servers  map[string]*httptest.Server // key: namespace/service
	failBody string
	requests atomic.Int64
}

// NewApps returns stand-ins that read Deployments through cs.
func NewApps(cs kubernetes.Interface) *Apps {
	return &Apps{cs: cs, servers: map[string]*httptest.Server{}, failBody: defaultFailBody}
}

// SetFailBody changes what a failing endpoint answers.
func (a *Apps) SetFailBody(body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failBody = body
}

// Requests counts readiness requests served.
func (a *Apps) Requests() int64 { return a.requests.Load() }

// Close stops every server.
func (a *Apps) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.servers {
		s.Close()
	}
	a.servers = map[string]*httptest.Server{}
}

// Readiness implements gate.Endpoints: one local server per namespace and
// service, started on first use.
func (a *Apps) Readiness(_ context.Context, namespace string, svc catalog.Service) (gate.Endpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := namespace + "/" + svc.Name
	s, ok := a.servers[key]
	if !ok {
		s = httptest.NewUnstartedServer(a.handler(namespace, svc))
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return gate.Endpoint{}, err
		}
		s.Listener = l
		s.Start()
		a.servers[key] = s
	}
	return gate.Endpoint{URL: s.URL + svc.ReadinessPath, Client: s.Client()}, nil
}

func (a *Apps) handler(namespace string, svc catalog.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		if r.URL.Path != svc.ReadinessPath {
			http.NotFound(w, r)
			return
		}
		d, err := a.cs.AppsV1().Deployments(namespace).Get(r.Context(), svc.Name, metav1.GetOptions{})
		if err != nil {
			http.Error(w, "deployment: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if d.Spec.Template.Annotations[ReadinessAnnotation] == "fail" {
			a.mu.Lock()
			body := a.failBody
			a.mu.Unlock()
			http.Error(w, body, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok","info":{"mysql":{"status":"up"},"redis":{"status":"up"}}}`)
	})
}
