package devicecmd

import (
	"context"
	"crypto/x509"

	"github.com/zdps/zdps/internal/bench"
	"github.com/zdps/zdps/pkg/client"
)

// storeCounters reads the store counters from /metrics of every endpoint
// (each a replica, reached with the same connection string's policy) and
// sums them; nil when no connection string is at hand. A replica that
// refuses or lacks the route counts as exporting nothing.
func storeCounters(cs client.ConnectionString, ok bool, roots *x509.CertPool, endpoints []string) func(ctx context.Context) (bench.StoreCounters, error) {
	if !ok {
		return nil
	}
	var clients []*client.Client
	for _, ep := range endpoints {
		one := cs
		one.HostName = ep
		c, err := client.New(client.Config{ConnectionString: one.String(), RootCAs: roots, UserAgent: "zdps-bench"})
		if err != nil {
			return nil
		}
		clients = append(clients, c)
	}
	return func(ctx context.Context) (bench.StoreCounters, error) {
		var sum bench.StoreCounters
		for _, c := range clients {
			b, err := c.Metrics(ctx)
			if err != nil {
				continue
			}
			sum.Add(bench.ParseStoreCounters(b))
		}
		return sum, nil
	}
}
