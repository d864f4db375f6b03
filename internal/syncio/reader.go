package syncio

import (
	"io"
	"sync"
)

// Reader returns r with its reads serialised.
func Reader(r io.Reader) io.Reader {
	if l, ok := r.(*lockedReader); ok {
		return l
	}
	return &lockedReader{r: r}
}

type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
