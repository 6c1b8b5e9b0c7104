// Package kube builds Kubernetes clients from kubeconfig bytes (never from a
// file path or the process environment, so a pipeline gets exactly the
// credentials it was handed), retries transient API failures within a budget,
// dry-runs manifests server-side and holds the per-environment deploy lock.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	retry "github.com/sethvargo/go-retry"
	"k8s.io/apimachinery/pkg/api/meta"
	apiversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// Client is one authenticated connection to a cluster, scoped to a default
// namespace. Every field is ready to use; none is nil.
type Client struct {
	// Namespace is the namespace objects without one are placed in.
	Namespace string
	// Typed, Dynamic and Discovery talk to the same API server with the same
	// credentials as REST; each request is bounded by RequestTimeout.
	Typed kubernetes.Interface
	// Watch is Typed without the per-request timeout, for informers and
	// watches, whose streams must outlive it (callers bound them by context).
	Watch     kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.CachedDiscoveryInterface
	// Mapper resolves kinds to resources lazily and re-reads discovery when
	// it meets a kind it does not know (a CRD installed a moment ago).
	Mapper meta.RESTMapper

	rest   *rest.Config
	loader clientcmd.ClientConfig
}

// RequestTimeout bounds every single API request a Client makes, so a hung
// connection (an API server that stopped mid-request) turns into an error the
// retry budget can handle instead of a wait without end.
const RequestTimeout = 20 * time.Second

// FromKubeconfig parses kubeconfig bytes (current context) and builds a
// Client for namespace. It does not contact the server; see Ping. Parse
// errors never quote the kubeconfig, which holds credentials.
func FromKubeconfig(kubeconfig []byte, namespace string) (*Client, error) {
	if len(kubeconfig) == 0 {
		return nil, errors.New("kubeconfig: empty")
	}
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: does not parse: %w", err)
	}
	overrides := &clientcmd.ConfigOverrides{}
	if namespace != "" {
		overrides.Context.Namespace = namespace
	}
	loader := clientcmd.NewDefaultClientConfig(*raw, overrides)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: namespace: %w", err)
	}
	return newClient(cfg, loader, ns)
}

func newClient(cfg *rest.Config, loader clientcmd.ClientConfig, namespace string) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = RequestTimeout
	// A deploy issues bursts of small requests (dry runs, history, watches);
	// client-side throttling at the default 5 QPS would dominate its runtime.
	cfg.QPS, cfg.Burst = 50, 100
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	wcfg := rest.CopyConfig(cfg)
	wcfg.Timeout = 0
	watch, err := kubernetes.NewForConfig(wcfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	return &Client{
		Namespace: namespace,
		Typed:     typed,
		Watch:     watch,
		Dynamic:   dyn,
		Discovery: cached,
		Mapper:    mapper,
		rest:      cfg,
		loader:    loader,
	}, nil
}

// RESTConfig returns a copy of the client's REST configuration.
func (c *Client) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// Ping asks the API server for its version, retrying transient failures
// within the budget b. The error says the server did not answer and why.
func (c *Client) Ping(ctx context.Context, b retry.Backoff) (string, error) {
	var version string
	err := Retry(ctx, b, func(ctx context.Context) error {
		raw, err := c.Typed.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		if err != nil {
			return err
		}
		var info apiversion.Info
		if err := json.Unmarshal(raw, &info); err != nil {
			return fmt.Errorf("decode /version: %w", err)
		}
		version = info.GitVersion
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("API server %s does not answer: %w", c.rest.Host, err)
	}
	return version, nil
}
