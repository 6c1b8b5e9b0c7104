// Package k8s embeds the cluster bootstrap (base) and the per-environment folders, so the deploy
// CLI and the Dagger module have a working default without reading the disk.
package k8s

import "embed"

// Environments holds environments/<env>/ and base/.
//
//go:embed all:environments all:base
var Environments embed.FS
