// Command images builds the project's local container images from Debian
// packages as OCI layouts under $KRGEOBUK_CACHE/dagger-images, and pushes
// the e2e base images to a registry.
//
//	go -C scripts/images run . go-sdk          # print the Go SDK image layout path
//	go -C scripts/images run . prove-go-sdk    # codegen + go build of the module in it, offline
//	go -C scripts/images run . base            # build node, nginx, mysql, redis, golang and node/nginx for arm64; print their layouts
//	go -C scripts/images run . push --registry 127.0.0.1:5000   # print the pushed refs as JSON
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: images go-sdk|prove-go-sdk|base|push --registry ADDR")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	registry := fs.String("registry", "", "registry address (host:port) for push")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cache, err := image.CacheRoot()
	if err != nil {
		return err
	}
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	defer func() { fmt.Fprintf(os.Stderr, "images %s: %s\n", args[0], time.Since(start).Round(time.Millisecond)) }()
	switch args[0] {
	case "go-sdk":
		g := &image.GoSDK{Repo: repo, Cache: cache, Log: os.Stderr}
		out, err := g.Build(ctx)
		if err != nil {
			return err
		}
		fmt.Println(out)
		return nil
	case "prove-go-sdk":
		g := &image.GoSDK{Repo: repo, Cache: cache, Log: os.Stderr}
		out, err := g.Build(ctx)
		if err != nil {
			return err
		}
		return g.Prove(ctx, out, os.Stderr)
	case "base":
		b := &image.Bases{Repo: repo, Cache: cache, Log: os.Stderr}
		outs, err := b.BuildAll(ctx)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(outs)
	case "push":
		if *registry == "" {
			return errors.New("push: --registry ADDR is required")
		}
		b := &image.Bases{Repo: repo, Cache: cache, Log: os.Stderr}
		refs, err := b.Push(ctx, *registry)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(refs)
	}
	return fmt.Errorf("unknown verb %q (go-sdk, prove-go-sdk, base, push)", args[0])
}

// repoRoot is the repository holding this tools module.
func repoRoot() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("locate the repository: %w", err)
	}
	root := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(root, "dagger.json")); err != nil {
		return "", fmt.Errorf("locate the repository: %w", err)
	}
	return root, nil
}
