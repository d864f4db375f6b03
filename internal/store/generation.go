package store

import (
	"sync"
	"sync/atomic"
)

// Generations of buckets, for the caches of rarely written documents
// (hubs, settings) that a hot path reads on every request: every write
// through Collection.Put or Collection.Delete of this process moves its
// bucket's generation once it is committed (and a use case that writes
// such a bucket through TxCollection calls Touch after its commit), so a
// cache that remembers the generation it read at drops a value at once
// after a local write. Writes by other processes (replicas) are not seen
// here: a cache bounds how long it keeps a value.
var generations sync.Map // Bucket → *atomic.Int64

func generation(b Bucket) *atomic.Int64 {
	if g, ok := generations.Load(b); ok {
		return g.(*atomic.Int64)
	}
	g, _ := generations.LoadOrStore(b, new(atomic.Int64))
	return g.(*atomic.Int64)
}

// Generation is b's generation in this process.
func Generation(b Bucket) int64 { return generation(b).Load() }

// Touch moves b's generation: call it after committing a write to b made
// through a TxCollection.
func Touch(b Bucket) { generation(b).Add(1) }
