// Package deploytest provides the real components a deploy needs where the
// simulated cluster has none: an OCI registry (go-containerregistry's
// registry, served over HTTP on loopback) holding synthetic images of the
// four services (or of any named component: the monitoring stack's), and
// one local HTTP server per readiness check standing in for the endpoint,
// since kwok's pods run nothing. Tests, the benchmark and `make demo` share
// them.
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	tagged, err := r.PublishTagged(version, services...)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for s, t := range tagged {
		out[s] = t.Digest
	}
	return out, nil
}

// Published is one pushed image: by tag and by digest.
type Published struct {
	Tag, Digest string
}

// PublishTagged pushes a fresh synthetic image for each named component
// (services or monitoring components alike) under Repository(name):version
// and returns both references: a deploy of the monitoring stack names its
// images by tag, as the chart's values do.
func (r *Registry) PublishTagged(version string, names ...string) (map[string]Published, error) {
	out := map[string]Published{}
	for _, s := range names {
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
		out[s] = Published{Tag: ref.String(), Digest: r.Repository(s) + "@" + d.String()}
	}
	return out, nil
}

// ReadinessAnnotation, set through a component's podAnnotations, tells the
// stand-in how to answer its readiness path while that pod template is its
// workload's current one: "fail" answers 503, anything else 200.
const ReadinessAnnotation = "deploytest.krgeobuk.dev/readiness"

// defaultFailBody is what a failing stand-in answers: what a NestJS API
// whose database is unreachable would say.
const defaultFailBody = "mysql: connect ECONNREFUSED 10.10.0.10:3307"

// Apps runs one HTTP server per readiness check (the APIs', the monitoring
// components'). Each answers GET on the check's path by looking at the
// workload behind the check's Service (a Deployment or a StatefulSet of the
// same name, as both charts name them) in the cluster: the pod template
// annotation ReadinessAnnotation decides, so rolling back the template heals
// the endpoint exactly as a real rollback would. It implements
// gate.Endpoints.
type Apps struct {
	// Listen is where each server listens (host:port); default
	// 127.0.0.1:0. A test whose gate runs elsewhere (in a Dagger engine's
	// container) listens on an address that container reaches.
	Listen   string
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
// check, started on first use.
func (a *Apps) Readiness(_ context.Context, namespace string, c gate.Check) (gate.Endpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := namespace + "/" + c.Service
	s, ok := a.servers[key]
	if !ok {
		s = httptest.NewUnstartedServer(a.handler(namespace, c))
		addr := a.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return gate.Endpoint{}, err
		}
		s.Listener = l
		s.Start()
		a.servers[key] = s
	}
	return gate.Endpoint{URL: s.URL + c.Path, Client: s.Client()}, nil
}

func (a *Apps) handler(namespace string, c gate.Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		if r.URL.Path != c.Path {
			http.NotFound(w, r)
			return
		}
		annotations, err := a.template(r.Context(), namespace, c.Service)
		if err != nil {
			http.Error(w, "workload: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if annotations[ReadinessAnnotation] == "fail" {
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

// template returns the pod template annotations of the Deployment, or else
// the StatefulSet, named name.
func (a *Apps) template(ctx context.Context, namespace, name string) (map[string]string, error) {
	d, err := a.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return d.Spec.Template.Annotations, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	s, err := a.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return s.Spec.Template.Annotations, nil
}
