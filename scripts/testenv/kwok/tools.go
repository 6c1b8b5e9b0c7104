//go:build tools

// Package tools pins kwok, the controller that plays the kubelet of every fake
// node. It is its own module because kwok v0.8.0 pins older Kubernetes
// libraries than the v1.37 control plane.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
