// Command krgeobuk-call runs one function of a Dagger module on the engine `make engine-up`
// started, with `dagger call`-style flags, without the dagger CLI:
//
//	krgeobuk-call [--module DIR] FUNCTION [--flag value ...]
//
// Secrets are given as env:NAME or file:PATH, directories as paths, services as tcp://HOST:PORT,
// lists by repeating the flag.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercall"
	"github.com/krgeobuk/krgeobuk-infra/e2e/daggersession"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "krgeobuk-call:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	module := "."
	if len(args) > 1 && args[0] == "--module" {
		module, args = args[1], args[2:]
	}
	if len(args) == 0 {
		return fmt.Errorf("usage: krgeobuk-call [--module DIR] FUNCTION [--flag value ...]")
	}
	host, err := daggersession.RunnerHost()
	if err != nil {
		return err
	}
	start := time.Now()
	connectCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := daggersession.Start(connectCtx, host)
	cancel()
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(os.Stderr, "krgeobuk-call: session %.1fs\n", time.Since(start).Seconds())
	t := time.Now()
	m, err := daggercall.LoadModule(ctx, s, module)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "krgeobuk-call: module %s loaded in %.1fs\n", m.Name, time.Since(t).Seconds())
	t = time.Now()
	out, err := m.Call(ctx, args[0], args[1:])
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "krgeobuk-call: %s in %.1fs\n", args[0], time.Since(t).Seconds())
	if out != "" {
		fmt.Println(out)
	}
	return nil
}
