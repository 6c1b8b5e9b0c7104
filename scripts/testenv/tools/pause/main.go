// Command pause is the sandbox process of every pod on the real test node: it
// holds the pod's namespaces open and exits when it is told to stop.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// Go's runtime catches SIGTERM and SIGINT from its first instruction, so
	// the kernel's view of the process cannot tell whether a stop would end it
	// cleanly yet; this line can (the runtime discards it in a sandbox).
	fmt.Fprintln(os.Stderr, "pause: holding the namespaces until SIGTERM or SIGINT")
	<-stop
}
