// Command krgeobuk deploys the krgeobuk platform without a CI engine: the
// same gated deploy, rollback, status, history and promote as the Dagger
// module, through the same request layer (pipelines/request), so both doors
// take the same flags and refuse bad input with the same report.
//
//	krgeobuk deploy   --env staging --kubeconfig ./kubeconfig --image auth-server=ghcr.io/krgeobuk/auth-server@sha256:... ...
//	krgeobuk deploy   --env staging --kubeconfig ./kubeconfig --service authz-server --image authz-server=...@sha256:...
//	krgeobuk rollback --env staging --kubeconfig ./kubeconfig [--revision 7 [--force]]
//	krgeobuk status   --env staging --kubeconfig ./kubeconfig
//	krgeobuk history  --env staging --kubeconfig ./kubeconfig --format markdown
//	krgeobuk promote  --from staging --to production --kubeconfig ./staging.kubeconfig --to-kubeconfig ./production.kubeconfig --username ci --password env:GHCR_TOKEN
//
// Exit status: 0 for a verified or unchanged deploy (and for status and
// history, a promotion whose deploy is verified or unchanged, and one with
// --copy-only that copied everything), 1 for any failed, refused, rolled-back
// or cancelled run, 2 for bad usage.
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
