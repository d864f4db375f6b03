// Package syncio makes an io.Reader safe for concurrent use by
// serialising its reads: an injected, deterministic test source of
// randomness is usually not, while the servers read it from concurrent
// requests.
package syncio
