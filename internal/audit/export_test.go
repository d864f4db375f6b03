package audit

// EntryHashForTest exposes the chain's hash to tests that play an
// attacker who recomputes it.
func EntryHashForTest(seq uint64, prev string, event []byte) string {
	return entryHash(seq, prev, event)
}
