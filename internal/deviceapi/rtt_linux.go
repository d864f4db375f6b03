//go:build linux

package deviceapi

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// connRTT reads the kernel's smoothed RTT estimate (TCP_INFO tcpi_rtt).
func connRTT(c net.Conn) time.Duration {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var rtt time.Duration
	_ = raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			rtt = time.Duration(info.Rtt) * time.Microsecond
		}
	})
	return rtt
}
