package main

import "time"

// timeoutForUnreachable bounds a status run against a closed port.
const timeoutForUnreachable = 5 * time.Second
