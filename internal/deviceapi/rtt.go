package deviceapi

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

type connKey struct{}

// ConnContext is an http.Server.ConnContext: it keeps each connection in
// its requests' context, so that the device API can read the round-trip
// time the kernel measured to the device (the geoLatency policy's
// measured latency). Without it requests carry no RTT.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// requestRTT is the smoothed round-trip time of the TCP connection r
// arrived on, 0 when unknown (no ConnContext, not TCP, not Linux).
func requestRTT(ctx context.Context) time.Duration {
	c, ok := ctx.Value(connKey{}).(net.Conn)
	if !ok {
		return 0
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	return connRTT(c)
}
