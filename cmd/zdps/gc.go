package main

import (
	"os"
	"runtime/debug"
)

// serveGCPercent is zdps serve's garbage-collection target (GOGC) when the
// environment sets none. The server's live heap is small (a few tens of
// MB: the store is bbolt's mmap, not Go heap), and with Go's default of
// 100 a registration paid about 8% of its CPU to the collector, plus
// mark assists that land on unlucky requests and lengthen the latency
// tail. At 400, under zdps bench at concurrency 256, server CPU per
// registration fell by about 0.1 ms (7%) for a few MB more peak heap.
// GOGC (and GOMEMLIMIT, which bounds memory regardless) still win.
const serveGCPercent = 400

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}
