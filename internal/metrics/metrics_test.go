package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zdps/zdps/internal/metrics"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
)

func TestExposition(t *testing.T) {
	m := metrics.New()
	m.Registration("symmetricKey", "https", "assigned", "", 12*time.Millisecond)
	m.Registration("symmetricKey", "mqtt", "refused", "unauthorized", time.Millisecond)
	// Values outside the sets are "other", never new series from input.
	m.Registration("dev-1234", "carrier-pigeon", "weird", "boom", time.Millisecond)
	m.Certificate("issued", 2)
	m.Throttled("poll")
	m.Allocation("hub-a.example.net", "hashed")
	m.CertificateExpiry("intermediate", time.Unix(1900000000, 0))
	m.StoreRetries(func() int64 { return 3 })
	m.StoreCounters(func() int64 { return 42 }, func() int64 { return 97 }, func() int64 { return 2 })
	b := m.Backend(memory.New())
	_ = b.Update(t.Context(), func(store.Tx) error { return nil })

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`zdps_registrations_total{attestation="symmetricKey",error_class="",outcome="assigned",transport="https"} 1`,
		`zdps_registrations_total{attestation="symmetricKey",error_class="unauthorized",outcome="refused",transport="mqtt"} 1`,
		`zdps_registrations_total{attestation="other",error_class="other",outcome="other",transport="other"} 1`,
		`zdps_registration_duration_seconds_bucket{outcome="assigned",transport="https",le="0.025"} 1`,
		`zdps_certificates_total{event="issued"} 2`,
		`zdps_throttled_requests_total{limit="poll"} 1`,
		`zdps_allocations_total{hub="hub-a.example.net",policy="hashed"} 1`,
		`zdps_certificate_expiry_timestamp_seconds{certificate="intermediate"} 1.9e+09`,
		`zdps_store_transaction_duration_seconds_count{kind="update"} 1`,
		`zdps_store_transaction_retries_total 3`,
		`zdps_store_round_trips_total 42`,
		`zdps_store_statements_total 97`,
		`zdps_store_conflicts_total 2`,
		`zdps_build_info{`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if n, err := testutil.GatherAndLint(m.Registry()); err != nil || len(n) != 0 {
		t.Errorf("lint: %v %v", n, err)
	}
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	m.Registration("x509", "https", "assigned", "", time.Second)
	m.Certificate("issued", 1)
	m.Alert("burst", "medium")
	if b := memory.New(); m.Backend(b) != store.Backend(b) {
		t.Fatal("a nil Metrics wrapped the backend")
	}
}
