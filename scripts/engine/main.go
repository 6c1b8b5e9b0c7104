// Command engine builds, starts and stops a Dagger engine natively (no Docker): see docs/engine.md.
//
//	engine build | up [--go-sdk-layout DIR] | exec [--dir DIR] -- CMD... | down
//
// `inside` is internal: `up` runs it as the init's child in the engine's namespaces.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
}

// paths are the folders every verb agrees on.
type paths struct {
	repo, cache, distconsts string
	standins                string // the CLI's stand-in modules (scripts/engine/standins)
}

func findPaths() (paths, error) {
	wd, err := os.Getwd()
	if err != nil {
		return paths{}, err
	}
	// Run as `go -C scripts/engine run .`: the repository is two levels up.
	repo := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(repo, "dagger.json")); err != nil {
		return paths{}, fmt.Errorf("run from scripts/engine (go -C scripts/engine run .): %w", err)
	}
	cache := os.Getenv("KRGEOBUK_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return paths{}, err
		}
		cache = filepath.Join(home, ".cache", "krgeobuk")
	}
	return paths{repo: repo, cache: cache, distconsts: filepath.Join(repo, "scripts", "codegen", "distconsts"),
		standins: filepath.Join(repo, "scripts", "engine", "standins")}, nil
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: engine build|up|exec|down")
	}
	if args[0] == "inside" {
		return inside(ctx, args[1:])
	}
	p, err := findPaths()
	if err != nil {
		return err
	}
	switch args[0] {
	case "build":
		dir, err := buildDir(p.cache, p.distconsts, p.standins)
		if err != nil {
			return err
		}
		return build(ctx, dir, p.distconsts, p.standins)
	case "up":
		return up(ctx, p, engineState(p), args[1:])
	case "exec":
		return execIn(ctx, engineState(p), args[1:])
	case "down":
		return down(ctx, engineState(p))
	default:
		return fmt.Errorf("unknown verb %q: want build, up, exec or down", args[0])
	}
}

// engineState is the engine's state folder: its build cache and the registry's blobs persist
// across runs so warm runs reuse them.
func engineState(p paths) stateDir {
	return stateDir(filepath.Join(p.cache, "dagger-engine", "state"))
}
