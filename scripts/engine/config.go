package main

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// RegistryPort is where the local OCI registry listens inside the engine's network namespace.
const RegistryPort = 5000

// SecureRegistryPort is where the authenticating registry (distribution, htpasswd over TLS from
// a throwaway CA) listens inside the engine's network namespace: the e2e suite publishes there
// with credentials, as a team publishes to its own registry.
const SecureRegistryPort = 5443

// GatewayAddr is the engine's CNI bridge gateway (network.DefaultCIDR 10.87.0.0/16 in v0.21.8):
// module containers reach the registry beside the engine at this address.
const GatewayAddr = "10.87.0.1"

type registryConfig struct {
	Mirrors   []string `json:"mirrors,omitempty"`
	PlainHTTP bool     `json:"http,omitempty"`
	Insecure  bool     `json:"insecure,omitempty"`
	// CAs are PEM files of the authorities the engine trusts for this registry, beside the system's.
	CAs []string `json:"ca,omitempty"`
}

// engineConfig renders /etc/dagger/engine.json: the local registry is plain HTTP both at the
// loopback address (the engine's own pulls) and at the gateway address (what code inside module
// containers uses), and docker.io is mirrored to it so `From("busybox:…")` never leaves the machine.
// The authenticating registry is TLS at both addresses, its CA (secureCA) trusted for it alone.
func engineConfig(secureCA string) ([]byte, error) {
	local := "127.0.0.1:" + strconv.Itoa(RegistryPort)
	gateway := GatewayAddr + ":" + strconv.Itoa(RegistryPort)
	cfg := struct {
		Registries map[string]registryConfig `json:"registries"`
	}{Registries: map[string]registryConfig{
		local:       {PlainHTTP: true, Insecure: true},
		gateway:     {PlainHTTP: true, Insecure: true},
		"docker.io": {Mirrors: []string{local}},
	}}
	if secureCA != "" {
		for _, ip := range []string{"127.0.0.1", GatewayAddr} {
			cfg.Registries[ip+":"+strconv.Itoa(SecureRegistryPort)] = registryConfig{CAs: []string{secureCA}}
		}
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// buildkitConfig renders the engine's --config file; only the state root is set.
func buildkitConfig(root string) []byte {
	return fmt.Appendf(nil, "root = %q\n", root)
}
