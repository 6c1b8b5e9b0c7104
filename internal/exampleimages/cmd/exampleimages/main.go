// Command exampleimages builds (or finds, cached) the example API and SPA
// images the real-node tests run, the base images under them and the
// Prometheus image the monitoring stack runs there, before
// `go test` starts: a cold build (debootstrap, npm ci) takes minutes that
// belong outside a test package's timeout. `make example-images` runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/krgeobuk/krgeobuk-infra/internal/exampleimages"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "exampleimages:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repo, err := binaries.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	imgs, err := exampleimages.Build(ctx, exampleimages.Options{Repo: repo, Cache: binaries.DefaultCacheDir(), Log: os.Stderr})
	if err != nil {
		return err
	}
	for kind, img := range imgs {
		d, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", kind, d)
	}
	prom, err := exampleimages.Prometheus(ctx, binaries.DefaultCacheDir(), func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if err != nil {
		return err
	}
	d, err := prom.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("prometheus %s\n", d)
	return nil
}
