// Command krgeobuk deploys the krgeobuk platform without a CI engine: the
// same gated deploy, rollback, status and history as the Dagger module,
// over the same packages.
//
//	krgeobuk deploy   --env staging --kubeconfig ./kubeconfig --image auth-server=ghcr.io/krgeobuk/auth-server@sha256:... ...
//	krgeobuk rollback --env staging --kubeconfig ./kubeconfig [--to 7 [--force]]
//	krgeobuk status   --env staging --kubeconfig ./kubeconfig
//	krgeobuk history  --env staging --kubeconfig ./kubeconfig
//
// Exit status: 0 for a verified or unchanged deploy (and for status and
// history), 1 for any failed, refused, rolled-back or cancelled run, 2 for
// bad usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
