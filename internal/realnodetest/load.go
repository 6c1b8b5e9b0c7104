package realnodetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
)

// Load sends n GET requests to url one after another from inside the node's
// network (the way a client in the cluster reaches a Service's ClusterIP),
// each on a fresh connection so the Service spreads them over its pods as it
// spreads clients, and returns how many got each status code. Each request
// is bounded; a transport error stops the load and is returned with the
// counts so far.
func Load(ctx context.Context, c *realnode.Cluster, url string, n int) (map[int]int, error) {
	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{DialContext: c.DialContext, DisableKeepAlives: true},
	}
	got := map[int]int{}
	for i := 0; i < n; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return got, err
		}
		res, err := client.Do(req)
		if err != nil {
			return got, fmt.Errorf("request %d of %d to %s: %w", i+1, n, url, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		got[res.StatusCode]++
	}
	return got, nil
}
