// Package catalog is the single source of truth for the services the
// krgeobuk platform ships: their names, kinds, ports, health endpoints and
// the data-server instances they depend on. Charts, pipelines and the Dagger
// module all read it; a test keeps the umbrella chart's values in step.
package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// Kind tells how a service is built and probed.
type Kind string

const (
	// KindAPI is a NestJS API with health, readiness and metrics endpoints.
	KindAPI Kind = "api"
	// KindSPA is a static single-page app served by unprivileged nginx.
	KindSPA Kind = "spa"
)

// Ports the services listen on inside their containers.
const (
	APIHTTPPort = 8000 // NestJS HTTP listener
	APITCPPort  = 8010 // NestJS microservice (TCP transport) listener
	SPAHTTPPort = 8080 // unprivileged nginx; the Service still exposes 80
	ServicePort = 80   // the HTTP port every Service exposes
)

// DataStore is one instance on the external data server.
type DataStore struct {
	Name   string // Service name inside the cluster and compose service name
	Engine string // "mysql" or "redis"
	Port   int    // published port on the data server
}

// Service describes one deployable service.
type Service struct {
	Name string
	Kind Kind
	// HTTPPort is the container port serving HTTP.
	HTTPPort int
	// TCPPort is the microservice transport port; zero for SPAs.
	TCPPort int
	// LivenessPath answers while the process is alive.
	LivenessPath string
	// ReadinessPath answers 2xx only when the service can serve traffic
	// (its databases are reachable). Deploy gates call it.
	ReadinessPath string
	// MetricsPath is scraped by Prometheus; empty when none is exposed.
	MetricsPath string
	// Stores are the data-server instances the service needs, MySQL first.
	Stores []DataStore
	// Calls lists the sibling services this one calls, which NetworkPolicies
	// must admit.
	Calls []string
}

// KeyPair names the two variables of one JWT signing key pair.
type KeyPair struct {
	Private string
	Public  string
}

// JWTKeyPairs are the key pairs every API reads from its JWT Secret (see
// JWTSecret): access tokens and refresh tokens. An API without all four
// variables, or with a public key that is not its private key's half, is not
// ready.
var JWTKeyPairs = []KeyPair{
	{Private: "JWT_ACCESS_PRIVATE_KEY", Public: "JWT_ACCESS_PUBLIC_KEY"},
	{Private: "JWT_REFRESH_PRIVATE_KEY", Public: "JWT_REFRESH_PUBLIC_KEY"},
}

// JWTKeys lists the JWTKeyPairs' variables, sorted.
func JWTKeys() []string {
	var out []string
	for _, p := range JWTKeyPairs {
		out = append(out, p.Private, p.Public)
	}
	sort.Strings(out)
	return out
}

// JWTSecret is the default name of an API's JWT Secret. The chart never
// renders it, in any environment: a private key must not sit in a values file
// or in Helm's release record. It is created out of band
// (k8s/secrets/README.md), and the chart's jwt.existingSecret can rename it.
func JWTSecret(service string) string { return service + "-jwt" }

// IsAPI reports whether the service is one of the NestJS APIs.
func (s Service) IsAPI() bool { return s.Kind == KindAPI }

var (
	authMySQL  = DataStore{Name: "auth-mysql", Engine: "mysql", Port: 3307}
	authRedis  = DataStore{Name: "auth-redis", Engine: "redis", Port: 6380}
	authzMySQL = DataStore{Name: "authz-mysql", Engine: "mysql", Port: 3308}
	authzRedis = DataStore{Name: "authz-redis", Engine: "redis", Port: 6381}
)

func api(name string, calls []string, stores ...DataStore) Service {
	return Service{
		Name: name, Kind: KindAPI,
		HTTPPort: APIHTTPPort, TCPPort: APITCPPort,
		LivenessPath: "/health", ReadinessPath: "/health/ready", MetricsPath: "/metrics",
		Stores: stores, Calls: calls,
	}
}

func spa(name string) Service {
	return Service{
		Name: name, Kind: KindSPA,
		HTTPPort:     SPAHTTPPort,
		LivenessPath: "/", ReadinessPath: "/",
	}
}

// services is kept in deploy order: APIs before the SPAs that call them.
var services = []Service{
	// auth-server asks authz-server for permissions over the TCP transport.
	api("auth-server", []string{"authz-server"}, authMySQL, authRedis),
	// authz-server verifies tokens with auth-server.
	api("authz-server", []string{"auth-server"}, authzMySQL, authzRedis),
	spa("auth-client"),
	spa("portal-client"),
}

// All returns every service in deploy order. The slice is a copy.
func All() []Service {
	out := make([]Service, len(services))
	for i, s := range services {
		out[i] = s
		out[i].Stores = append([]DataStore(nil), s.Stores...)
		out[i].Calls = append([]string(nil), s.Calls...)
	}
	return out
}

// Names returns every service name in deploy order.
func Names() []string {
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s.Name
	}
	return out
}

// Stores returns every data-server instance, sorted by name.
func Stores() []DataStore {
	seen := map[string]DataStore{}
	for _, s := range services {
		for _, d := range s.Stores {
			seen[d.Name] = d
		}
	}
	out := make([]DataStore, 0, len(seen))
	for _, d := range seen {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the named service, or an error that lists the known ones.
func Lookup(name string) (Service, error) {
	for _, s := range All() {
		if s.Name == name {
			return s, nil
		}
	}
	return Service{}, fmt.Errorf("unknown service %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Select resolves a list of names; an empty list means every service. The
// result keeps deploy order and has no duplicates, and any unknown name fails
// the whole selection before anything is done with it.
func Select(names []string) ([]Service, error) {
	if len(names) == 0 {
		return All(), nil
	}
	want := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if _, err := Lookup(n); err != nil {
			return nil, err
		}
		want[n] = true
	}
	var out []Service
	for _, s := range All() {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}
