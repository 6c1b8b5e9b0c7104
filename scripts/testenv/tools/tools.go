//go:build tools

// Package tools pins the programs the test clusters run: the control plane
// (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) and the
// real node's kubelet, kube-proxy, containerd, its runc shim and ctr, and
// kube-network-policies (built patched, see internal/testenv/binaries).
// CoreDNS (./coredns) and the pause program (./pause) are mains of this
// module. One module, so that every program compiles against one set of
// dependency versions and shares the Go build cache.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "sigs.k8s.io/kube-network-policies/cmd"
)
