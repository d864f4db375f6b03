package syncio

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"testing"
)

// unsafeReader fails the test when two reads overlap.
type unsafeReader struct {
	t      *testing.T
	mu     sync.Mutex
	inRead bool
}

func (u *unsafeReader) Read(p []byte) (int, error) {
	u.mu.Lock()
	if u.inRead {
		u.t.Error("concurrent reads")
	}
	u.inRead = true
	u.mu.Unlock()
	for i := range p {
		p[i] = 1
		runtime.Gosched() // widen the window another read could enter
	}
	u.mu.Lock()
	u.inRead = false
	u.mu.Unlock()
	return len(p), nil
}

func TestReaderSerialises(t *testing.T) {
	r := Reader(&unsafeReader{t: t})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b := make([]byte, 16)
				if _, err := io.ReadFull(r, b); err != nil || !bytes.Equal(b, bytes.Repeat([]byte{1}, 16)) {
					t.Errorf("read %x, %v", b, err)
				}
			}
		})
	}
	wg.Wait()
	if Reader(r) != r {
		t.Error("wrapping a serialised reader again adds a second lock")
	}
}
