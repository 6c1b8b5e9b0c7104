package e2e

import (
	"fmt"
	"sync"
	"time"
)

// timings is the report `make e2e` prints: measurements, never assertions.
type timings struct {
	mu    sync.Mutex
	names []string
	d     map[string]time.Duration
}

var report = &timings{d: map[string]time.Duration{}}

func (r *timings) add(name string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.d[name]; !ok {
		r.names = append(r.names, name)
	}
	r.d[name] += d
}

func (r *timings) print() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.names) == 0 {
		return
	}
	fmt.Println("e2e timings:")
	for _, n := range r.names {
		fmt.Printf("  %-28s %8.1fs\n", n, r.d[n].Seconds())
	}
}
