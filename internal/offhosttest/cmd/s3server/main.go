// Command s3server builds (or finds cached) versitygw, the S3 server the
// off-host backup tests run, so `make test` pays the cold build once,
// outside any test timeout. It prints the binary's path.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/offhosttest"
)

func main() {
	// A cold build takes about a minute and a half on two busy cores.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := offhosttest.EnsureVersitygw(ctx, log.Printf)
	if err != nil {
		log.Fatalf("s3server: %v", err)
	}
	fmt.Printf("versitygw %s (%s)\n", bin, time.Since(start).Round(time.Second))
}
