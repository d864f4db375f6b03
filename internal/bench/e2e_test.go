package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/bench"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
)

// TestZdpsBench runs `zdps bench --setup --cleanup` against a real `zdps
// serve` for each attestation kind and checks the report and that cleanup
// left nothing behind. It asserts correctness, not speed: speed is what
// the command measures.
func TestZdpsBench(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs zdps serve")
	}
	srv := zdpstest.Start(t)
	bin := zdpstest.Binary(t)
	c := srv.Client()
	ctx := context.Background()

	cases := []struct {
		name, attestation string
		devices           int
		extra             []string
		wantFull          func(int) bool
	}{
		{"symmetric individual", bench.SymmetricIndividual, 200, nil, func(n int) bool { return n == 200 }},
		{"x509", bench.X509, 200, nil, func(n int) bool { return n == 200 }},
		// Two register requests per TPM device (challenge, then SAS), each
		// on the device's one connection.
		{"tpm", bench.TPM, 40, nil, func(n int) bool { return n == 40 }},
		// With keep-alive the 32 workers reuse their connections. Go's
		// transport hands a finished connection back to its pool from
		// another goroutine, so a worker's next request can race it and
		// dial afresh: under load (race detector, parallel test packages)
		// a fifth of the requests did. Half the devices is the bound that
		// still proves reuse without counting on the scheduler.
		{"symmetric group keep-alive", bench.SymmetricGroup, 300, []string{"--keep-alive", "--pregenerate=false"}, func(n int) bool { return n >= 1 && n < 150 }},
		// One MQTT connection, so one handshake, per device.
		{"symmetric individual over mqtt", bench.SymmetricIndividual, 200, []string{"--transport", "mqtt", "--mqtt-endpoint", srv.MQTTAddr()}, func(n int) bool { return n == 200 }},
		{"x509 over mqtt-ws", bench.X509, 100, []string{"--transport", "mqtt-ws"}, func(n int) bool { return n == 100 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			transport := "https"
			for i, a := range tc.extra {
				if a == "--transport" {
					transport = tc.extra[i+1]
				}
			}
			prefix := "e2e-" + strings.ReplaceAll(tc.attestation, "symmetric-", "s") + "-" + transport
			args := append([]string{"bench", "--data-dir", srv.DataDir, "--attestation", tc.attestation,
				"--devices", strconv.Itoa(tc.devices), "--concurrency", "32", "--setup", "--cleanup", "--prefix", prefix, "-o", "json"}, tc.extra...)
			cmd := exec.Command(bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("zdps bench: %v\nstdout:\n%s\nstderr:\n%s\nserver:\n%s", err, stdout.String(), stderr.String(), tail(srv.Logs()))
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr without a terminal should be empty (no progress bar): %q", stderr.String())
			}
			var r bench.Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
			}
			l := r.LatencyMs
			switch {
			case r.Attestation != tc.attestation || r.Transport != transport || r.Devices != tc.devices || r.Concurrency != 32 || !r.CSR:
				t.Errorf("report echoes the run wrongly: %+v", r)
			case r.Succeeded != tc.devices || r.Failed != 0 || len(r.Errors) != 0:
				t.Errorf("succeeded %d, failed %d, errors %v %v", r.Succeeded, r.Failed, r.Errors, r.ErrorSamples)
			case r.RegistrationsPerSecond <= 0 || r.ElapsedSeconds <= 0:
				t.Errorf("throughput %v/s over %vs", r.RegistrationsPerSecond, r.ElapsedSeconds)
			case !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max):
				t.Errorf("latency percentiles out of order: %+v", l)
			case !tc.wantFull(r.TLSHandshakes.Full) || r.TLSHandshakes.Resumed != 0:
				t.Errorf("TLS handshakes %+v", r.TLSHandshakes)
			case r.CPU.ClientMsPerRegistration <= 0:
				t.Errorf("client CPU %+v", r.CPU)
			}

			// Cleanup removed the records, enrollments and group.
			for _, id := range []string{prefix + "-0000000", prefix + "-" + pad7(tc.devices-1)} {
				if _, err := c.GetRegistration(ctx, id); !errors.Is(err, client.ErrNotFound) {
					t.Errorf("registration %s after cleanup: %v", id, err)
				}
				if _, err := c.GetEnrollment(ctx, id); !errors.Is(err, client.ErrNotFound) {
					t.Errorf("enrollment %s after cleanup: %v", id, err)
				}
			}
			if _, err := c.GetGroup(ctx, prefix); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("group %s after cleanup: %v", prefix, err)
			}
		})
	}
	// The hubs setup created when there were none are gone too.
	hubs, _, err := c.ListHubs(ctx, 10, "")
	if err != nil || len(hubs) != 0 {
		t.Errorf("hubs after cleanup: %d, %v", len(hubs), err)
	}

	t.Run("tpm without setup is refused", func(t *testing.T) {
		out, err := exec.Command(bin, "bench", "--data-dir", srv.DataDir, "--attestation", "tpm", "--devices", "1").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--setup") {
			t.Errorf("bench --attestation tpm without --setup: %v\n%s", err, out)
		}
	})
	t.Run("x509 without setup is refused", func(t *testing.T) {
		out, err := exec.Command(bin, "bench", "--data-dir", srv.DataDir, "--attestation", "x509", "--devices", "1").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--setup") {
			t.Errorf("bench --attestation x509 without --setup: %v\n%s", err, out)
		}
	})
}

func pad7(n int) string { return fmt.Sprintf("%07d", n) }

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
