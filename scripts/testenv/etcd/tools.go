//go:build tools

// Package tools pins the etcd server the simulated cluster stores its state in.
// It is its own module because etcd v3.6 and Kubernetes v1.37 want different
// versions of the etcd client libraries and of gRPC.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
