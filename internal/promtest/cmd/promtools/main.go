// Command promtools builds (or finds cached) every monitoring program the
// tests run, so `make test` pays the cold build once, outside any test
// timeout. It prints each binary's path.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
)

func main() {
	// A cold build of all six on two busy cores stays well inside this.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) { log.Printf(format, args...) }
	for _, t := range promtest.All() {
		start := time.Now()
		bin, err := t.Ensure(ctx, logf)
		if err != nil {
			log.Fatalf("promtools: %v", err)
		}
		fmt.Fprintf(os.Stdout, "%-16s %s (%s)\n", t.Name, bin, time.Since(start).Round(time.Second))
	}
}
