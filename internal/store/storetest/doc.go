// Package storetest is the conformance suite every store.Backend must pass:
// the in-memory reference, bbolt, and any later engine (PostgreSQL). It
// checks the Backend contract itself and the typed layer (store.New) on top
// of it, using only the store package's interfaces and sentinel errors, so
// it assumes nothing about how a backend keeps its data.
//
// A backend's test calls Run with a function that opens a fresh, empty
// backend for one subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend {
//			b := mybackend.Open(...)
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// Some subtests close the backend themselves, so the cleanup registered by
// open must tolerate a backend that is already closed.
package storetest
