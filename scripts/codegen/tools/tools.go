//go:build tools

// Package tools pins the Dagger code generator that `make generate` runs.
package tools

import (
	_ "github.com/dagger/dagger/cmd/codegen"
)
