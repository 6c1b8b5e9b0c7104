// Package emptycache holds only a test: it runs the cache-filling steps of
// `make test` (the testenv build, the monitoring tools, the S3 server) against an empty
// cache root, with the real, already built binaries standing in for the
// compiler's output, so a folder the code assumes instead of creating fails
// in seconds instead of on a fresh machine after forty minutes.
package emptycache
