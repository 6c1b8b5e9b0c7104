package dbtest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
)

// Network is a network namespace a server can run in instead of the host's
// loopback: the real node's, where pods reach a data server through their
// NetworkPolicies (internal/testenv/realnode). Command enters it; the test
// process reaches the server through DialContext.
type Network interface {
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// place is where a server listens and how it is started and reached.
type place struct {
	network Network // nil: the host's loopback
	host    string
}

func (p place) addr() string {
	if p.host == "" {
		return "127.0.0.1"
	}
	return p.host
}

func (p place) command(name string, args ...string) *exec.Cmd {
	if p.network == nil {
		return exec.Command(name, args...)
	}
	// The server outlives any one call's context: serverproc stops it.
	return p.network.Command(context.Background(), name, args...)
}

func (p place) dial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.network == nil {
		return (&net.Dialer{}).DialContext
	}
	return p.network.DialContext
}

var dialers atomic.Int64

// mysqlNet registers the place's dialer with the MySQL driver and returns
// the network name a DSN uses for it.
func (p place) mysqlNet() string {
	if p.network == nil {
		return "tcp"
	}
	name := fmt.Sprintf("dbtest-%d", dialers.Add(1))
	d := p.network.DialContext
	mysql.RegisterDialContext(name, func(ctx context.Context, addr string) (net.Conn, error) {
		return d(ctx, "tcp", addr)
	})
	return name
}

// InNetwork runs MariaDB in network n, listening on host (an address of
// that network pods reach).
func InNetwork(n Network, host string) MariaDBOption {
	return func(c *mariaDBConfig) { c.place = place{network: n, host: host} }
}

// RedisInNetwork runs Redis in network n, listening on host.
func RedisInNetwork(n Network, host string) RedisOption {
	return func(c *redisConfig) { c.place = place{network: n, host: host} }
}
