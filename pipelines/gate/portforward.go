package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PortForward reaches a Service's ready pods the way `kubectl port-forward`
// does: the API server asks the pod's kubelet to open a stream into the
// pod's own network namespace, and the request arrives on the pod's
// loopback. NetworkPolicies filter traffic between pods and from other
// hosts, not a pod's loopback, so the chart's default-deny stays whole:
// the API server's service proxy, by contrast, is a connection from the
// control plane to the pod, which default-deny drops wherever the control
// plane is not root on the node (managed clusters, a non-root API server).
// The deployer needs pods/portforward (create) and endpointslices (list).
type PortForward struct {
	Config *rest.Config
}

// Readiness implements Endpoints. The returned client opens a fresh
// forward for every connection, each to the next ready endpoint of the
// Service, so successive attempts cover every ready pod and a replaced pod
// is never asked twice.
func (p PortForward) Readiness(_ context.Context, namespace string, c Check) (Endpoint, error) {
	cs, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return Endpoint{}, fmt.Errorf("service %s: port-forward client: %w", c.Name, err)
	}
	f := &forwarder{cfg: p.Config, cs: cs, namespace: namespace, check: c}
	return Endpoint{
		// The host is only a name for reports: the transport dials a pod
		// through the API server whatever the URL says.
		URL: fmt.Sprintf("http://%s.%s.svc%s", c.Service, namespace, c.Path),
		Client: &http.Client{Transport: &http.Transport{
			DialContext:       f.dial,
			DisableKeepAlives: true,
		}},
	}, nil
}

type forwarder struct {
	cfg       *rest.Config
	cs        kubernetes.Interface
	namespace string
	check     Check
	next      atomic.Uint64
}

// target is one ready endpoint of the Service: a pod and the port the
// Service's named port resolves to on it.
type target struct {
	pod  string
	port int32
}

// targets lists the Service's ready endpoints from its EndpointSlices,
// which already resolve a named target port to a number per pod.
func (f *forwarder) targets(ctx context.Context) ([]target, error) {
	slices, err := f.cs.DiscoveryV1().EndpointSlices(f.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + f.check.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("service %s: endpoints: %w", f.check.Service, err)
	}
	var ts []target
	for _, s := range slices.Items {
		port := int32(0)
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == f.check.Port && p.Port != nil {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if ready && e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ts = append(ts, target{pod: e.TargetRef.Name, port: port})
			}
		}
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("service %s has no ready endpoint on port %q", f.check.Service, f.check.Port)
	}
	return ts, nil
}

// dial forwards a local port to the next ready endpoint and connects to
// it; closing the connection ends the forward.
func (f *forwarder) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	ts, err := f.targets(ctx)
	if err != nil {
		return nil, err
	}
	t := ts[int(f.next.Add(1)-1)%len(ts)]
	dialer, err := f.podDialer(t.pod)
	if err != nil {
		return nil, err
	}
	fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"},
		[]string{fmt.Sprintf("0:%d", t.port)}, ready, io.Discard, io.Discard)
	if err != nil {
		stop()
		return nil, fmt.Errorf("pod %s: port-forward: %w", t.pod, err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		stop()
		return nil, fmt.Errorf("pod %s: port-forward: %w", t.pod, errOr(err, "ended before it was ready"))
	case <-ctx.Done():
		stop()
		<-done
		return nil, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		stop()
		<-done
		return nil, fmt.Errorf("pod %s: port-forward: no local port: %w", t.pod, errOr(err, "none"))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
	if err != nil {
		stop()
		<-done
		return nil, fmt.Errorf("pod %s: port-forward: %w", t.pod, err)
	}
	return &forwardedConn{Conn: conn, stop: func() { stop(); <-done }}, nil
}

// podDialer speaks the port-forward protocol over WebSockets, falling
// back to SPDY for API servers that do not upgrade, as kubectl does.
func (f *forwarder) podDialer(pod string) (httpstream.Dialer, error) {
	u := f.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.namespace).
		Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(f.cfg)
	if err != nil {
		return nil, fmt.Errorf("pod %s: port-forward transport: %w", pod, err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	ws, err := portforward.NewSPDYOverWebsocketDialer(u, f.cfg)
	if err != nil {
		return nil, fmt.Errorf("pod %s: port-forward transport: %w", pod, err)
	}
	return portforward.NewFallbackDialer(ws, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	}), nil
}

type forwardedConn struct {
	net.Conn
	once sync.Once
	stop func()
}

func (c *forwardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.stop)
	return err
}

func errOr(err error, otherwise string) error {
	if err != nil {
		return err
	}
	return errors.New(otherwise)
}
