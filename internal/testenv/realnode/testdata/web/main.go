// Command web is the test image of package realnode: a static HTTP server
// (no arguments; it answers / with its host name and /healthz with 200 on
// :8080) and the client the tests run in pods with kubectl exec:
//
//	web get URL       exit 0 if a fresh connection gets 200, 1 otherwise
//	web resolve NAME  print NAME's addresses, exit 1 if it does not resolve
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) == 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		switch os.Args[1] {
		case "get":
			os.Exit(get(ctx, os.Args[2]))
		case "resolve":
			addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			for _, a := range addrs {
				fmt.Println(a)
			}
			return
		}
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, host+"\n") })
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(os.Stderr, srv.ListenAndServe())
	os.Exit(1)
}

func get(ctx context.Context, url string) int {
	// A new transport per run: a fresh connection, as policies only act on
	// new ones.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %s", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
