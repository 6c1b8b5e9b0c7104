// Package podstandin stands in for the processes of the simulated cluster's
// pods, which kwok gives an IP address but never runs. With the pod CIDR
// routed to the loopback device of the network namespace the API server runs
// in (RouteLocal), the API server's service proxy, which dials a ready pod's
// IP and port, reaches this server; it answers the readiness path of the
// service (or monitoring component) whose pod owns the address it was
// reached at. It is a stand-in, named as such: it proves the gate's path
// through the service proxy, not an application.
package podstandin

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

// NameLabel is the charts' label naming a pod's service or component.
const NameLabel = "app.kubernetes.io/name"

// Server answers on every catalog service's HTTP port and every monitoring
// component's readiness port.
type Server struct {
	cs       kubernetes.Interface
	servers  []*http.Server
	wg       sync.WaitGroup
	mu       sync.Mutex
	answered map[string]int // service -> readiness answers given
}

// Start listens on every address of the namespace on each service's HTTP
// port (8000 for the APIs, 8080 for the SPAs) and on each monitoring
// component's (9090 Prometheus, 9093 Alertmanager, 3000 Grafana).
func Start(cs kubernetes.Interface) (*Server, error) {
	s := &Server{cs: cs, answered: map[string]int{}}
	ports := map[int]bool{}
	for _, svc := range catalog.All() {
		ports[svc.HTTPPort] = true
	}
	for _, p := range stack.MonitoringProbes() {
		ports[p.ContainerPort] = true
	}
	for p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", p))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("pod stand-in: port %d: %w", p, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
		s.servers = append(s.servers, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.Serve(l)
		}()
	}
	return s, nil
}

// Close stops every listener.
func (s *Server) Close() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	s.wg.Wait()
}

// Answered counts the readiness answers given for a service or component.
func (s *Server) Answered(service string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered[service]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	host, _, err := net.SplitHostPort(fmt.Sprint(local))
	if err != nil {
		http.Error(w, "pod stand-in: no local address", http.StatusInternalServerError)
		return
	}
	pods, err := s.cs.CoreV1().Pods("").List(r.Context(), metav1.ListOptions{FieldSelector: "status.podIP=" + host})
	if err != nil || len(pods.Items) == 0 {
		http.Error(w, fmt.Sprintf("pod stand-in: no pod has address %s", host), http.StatusServiceUnavailable)
		return
	}
	name := pods.Items[0].Labels[NameLabel]
	path := ""
	if svc, err := catalog.Lookup(name); err == nil {
		path = svc.ReadinessPath
	} else if p, ok := stack.MonitoringProbes()[name]; ok {
		path = p.Path
	}
	if path == "" || r.URL.Path != path {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.answered[name]++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok","standIn":"`+name+`"}`)
}

// RouteLocal routes cidr to the loopback device of the calling process's
// network namespace, so every address in it is local; the returned function
// removes the route. It needs CAP_NET_ADMIN in that namespace: the e2e tests
// run in the engine's, never the host's.
func RouteLocal(ctx context.Context, cidr string) (func() error, error) {
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		return nil, fmt.Errorf("route %s: %w", cidr, err)
	}
	run := func(verb string) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", "route", verb, "local", cidr, "dev", "lo").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip route %s local %s: %w: %s", verb, cidr, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("add"); err != nil {
		return nil, err
	}
	return func() error { return run("del") }, nil
}
