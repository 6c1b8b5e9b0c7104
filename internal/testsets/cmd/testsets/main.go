// Command testsets lists or runs the container set of the Go suite (see package testsets):
//
//	testsets list                  every package: its light tests and, per heavy test, the helper
//	testsets run [go test flags]   go test on the container set, heavy tests skipped
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/krgeobuk/krgeobuk-infra/internal/testsets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsets:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "run") {
		return fmt.Errorf("usage: testsets list | run [go test flags]")
	}
	pkgs, err := testsets.List(ctx, ".", "./...")
	if err != nil {
		return err
	}
	if args[0] == "list" {
		for _, p := range pkgs {
			fmt.Printf("%s: %d in the container set, %d out\n", strings.TrimPrefix(p.ImportPath, testsets.Module+"/"), len(p.Light), len(p.Heavy))
			names := make([]string, 0, len(p.Heavy))
			for n := range p.Heavy {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Printf("  out: %s (%s)\n", n, strings.TrimPrefix(p.Heavy[n], testsets.Module+"/"))
			}
		}
		return nil
	}
	var failed []string
	for _, r := range testsets.Runs(pkgs, args[1:]...) {
		cmd := exec.CommandContext(ctx, "go", r...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			failed = append(failed, "go "+strings.Join(r, " "))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}
