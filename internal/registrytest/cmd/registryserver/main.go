// Command registryserver builds (or finds cached) the distribution registry
// the registry tests run, so `make test` pays the cold build once, outside
// any test timeout. It prints the binary's path.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
)

func main() {
	// A cold build took about two minutes on two busy cores.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := registrytest.Server.Ensure(ctx, log.Printf)
	if err != nil {
		log.Fatalf("registryserver: %v", err)
	}
	fmt.Printf("registry %s (%s)\n", bin, time.Since(start).Round(time.Second))
}
