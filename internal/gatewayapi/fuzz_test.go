package gatewayapi

import (
	"testing"

	"github.com/zdps/zdps/pkg/dps"
)

// FuzzDecodeBodies: every body a gateway sends is strictly decoded, into
// an error or a value, never a panic.
func FuzzDecodeBodies(f *testing.F) {
	f.Add([]byte(`{"csr":"MIIBIjAN"}`))
	f.Add([]byte(`{"records":[{"registration":{"registrationId":"d"},"certificate":"AA=="}]}`))
	f.Add([]byte(`{"events":[{"id":"1","time":"2026-01-01T00:00:00Z","action":"a","outcome":"success","actor":"device"}]}`))
	f.Add([]byte(`{"lastSync":"2026-01-01T00:00:00Z","backlog":3,"caNotAfter":null,"caSerial":"ab"}`))
	f.Add([]byte(`{"site":"other"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if der, err := DecodeCARequest(b); err == nil && len(der) == 0 {
			t.Fatal("empty CSR accepted")
		}
		var recs dps.GatewayRecords
		_ = DecodeStrict(b, &recs)
		var evs dps.GatewayAudit
		_ = DecodeStrict(b, &evs)
		var st dps.GatewayStatus
		_ = DecodeStrict(b, &st)
	})
}
