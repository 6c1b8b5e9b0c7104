// Command testenv builds the test clusters' binaries, the simulated control
// plane's and the real node's (`testenv build`,
// what `make testenv` runs) or starts a cluster for a demo (`testenv up`):
// it prints the kubeconfig path and runs until interrupted, then stops the
// cluster and removes its directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: testenv build | testenv up [-name NAME] [-nodes N]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "build":
		set, err := binaries.Ensure(ctx, binaries.Options{Log: os.Stderr})
		if err != nil {
			return err
		}
		for _, p := range set.All() {
			fmt.Println(p)
		}
		return nil
	case "up":
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		name := fs.String("name", "demo", "cluster name prefix")
		nodes := fs.Int("nodes", 2, "number of fake nodes")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		c, err := testenv.Start(ctx, testenv.Options{Name: *name, Nodes: *nodes, Log: os.Stderr})
		if err != nil {
			return err
		}
		fmt.Printf("export KUBECONFIG=%s\n", c.KubeconfigPath())
		fmt.Fprintf(os.Stderr, "testenv: cluster %s is up with nodes %v; Ctrl-C stops it\n", c.Name(), c.Nodes())
		<-ctx.Done()
		return c.Stop()
	default:
		return fmt.Errorf("testenv: unknown command %q (want build or up)", args[0])
	}
}
