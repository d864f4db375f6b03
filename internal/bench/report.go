package bench

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/device"
)

// Report is the outcome of a run; its JSON form is what `zdps bench -o
// json` prints.
type Report struct {
	Attestation string `json:"attestation"`
	// Transport is https, mqtt or mqtt-ws.
	Transport   string `json:"transport"`
	Devices     int    `json:"devices"`
	Concurrency int    `json:"concurrency"`
	// Rate is the requested pace in registrations/s, 0 when unpaced.
	Rate float64 `json:"rate,omitempty"`
	CSR  bool    `json:"csr"`
	// CSRPregenerated: keys and CSRs were made before the timed phase
	// (false: each device generated its key and CSR inside it).
	CSRPregenerated bool `json:"csrPregenerated"`
	KeepAlive       bool `json:"keepAlive"`
	TLSResumption   bool `json:"tlsResumption"`
	// KeyExchange is the TLS key exchange the devices offered.
	KeyExchange string `json:"keyExchange"`

	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// ElapsedSeconds is the wall time of the timed phase.
	ElapsedSeconds         float64 `json:"elapsedSeconds"`
	RegistrationsPerSecond float64 `json:"registrationsPerSecond"`
	// LatencyMs covers successful registrations, from the start of the
	// device's connection to its assigned answer.
	LatencyMs Latency `json:"latencyMs"`
	// Errors counts failures by kind (see ErrorKind); ErrorSamples holds
	// one message per kind.
	Errors       map[string]int    `json:"errors"`
	ErrorSamples map[string]string `json:"errorSamples,omitempty"`

	// TLSHandshakes counts full and resumed handshakes of the timed phase.
	TLSHandshakes Handshakes `json:"tlsHandshakes"`

	// PrepareSeconds, SetupSeconds and CleanupSeconds are the untimed
	// phases.
	PrepareSeconds float64 `json:"prepareSeconds"`
	SetupSeconds   float64 `json:"setupSeconds,omitempty"`
	CleanupSeconds float64 `json:"cleanupSeconds,omitempty"`

	// CPU is what the simulator (and the server, when its process ID was
	// given) spent during the timed phase, per successful registration.
	CPU CPU `json:"cpu"`
	// LoadAverage is the 1-minute load average before and after the timed
	// phase (Linux), to judge how busy the machine was.
	LoadAverage [2]float64 `json:"loadAverage"`
	// PerEndpoint splits the run by endpoint when there were several
	// (Config.Endpoints).
	PerEndpoint []EndpointFigures `json:"perEndpoint,omitempty"`
	// Store is what the store counted over the timed phase (retries,
	// conflicts, round trips), when the servers export it.
	Store *StoreFigures `json:"store,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Handshakes counts TLS handshakes the simulated devices made.
type Handshakes struct {
	Full    int `json:"full"`
	Resumed int `json:"resumed"`
}

// CPU is processor time during the timed phase. Server fields are zero
// unless Config.ServerPID was set and /proc could be read.
type CPU struct {
	ClientSeconds              float64 `json:"clientSeconds"`
	ClientMsPerRegistration    float64 `json:"clientMsPerRegistration"`
	ServerSeconds              float64 `json:"serverSeconds,omitempty"`
	ServerMsPerRegistration    float64 `json:"serverMsPerRegistration,omitempty"`
	ServerPID                  int     `json:"serverPid,omitempty"`
	ServerPIDs                 []int   `json:"serverPids,omitempty"`
	DatabaseSeconds            float64 `json:"databaseSeconds,omitempty"`
	DatabaseMsPerRegistration  float64 `json:"databaseMsPerRegistration,omitempty"`
	MachineCPUs                int     `json:"machineCpus"`
	MachineBusySeconds         float64 `json:"machineBusySeconds,omitempty"`
	MachineBusyMsPerRegistered float64 `json:"machineBusyMsPerRegistration,omitempty"`
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted,
// which must be in ascending order; 0 when empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	// Rank ⌈p/100·n⌉, 1-based.
	rank := int(p / 100 * float64(len(sorted)))
	if float64(rank) < p/100*float64(len(sorted)) {
		rank++
	}
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summarize computes the latency summary of samples (any order; it sorts
// a copy).
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{
		Min:  ms(s[0]),
		Mean: ms(sum / time.Duration(len(s))),
		P50:  ms(Percentile(s, 50)),
		P90:  ms(Percentile(s, 90)),
		P99:  ms(Percentile(s, 99)),
		Max:  ms(s[len(s)-1]),
	}
}

// ErrorKind names the class of a registration failure, the key of
// Report.Errors: "http-<status>-<errorCode>" for refusals and final
// statuses, "gave-up" after exhausted retries, then "timeout", "tls",
// "connect", "malformed-response", "canceled" and "other".
func ErrorKind(err error) string {
	var de *device.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, device.ErrGaveUp):
		// Checked first: it wraps the last transient failure, often an
		// *Error.
		return "gave-up"
	case errors.As(err, &de):
		if de.Status != "" {
			return fmt.Sprintf("status-%s-%d", de.Status, de.ErrorCode)
		}
		return fmt.Sprintf("http-%d-%d", de.StatusCode, de.ErrorCode)
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout"
	case errors.Is(err, device.ErrMalformedResponse):
		return "malformed-response"
	case isTLS(err):
		return "tls"
	case isConnect(err):
		return "connect"
	}
	return "other"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLS(err error) bool {
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		verify  *tls.CertificateVerificationError
		header  tls.RecordHeaderError
		alert   tls.AlertError
	)
	return errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &verify) ||
		errors.As(err, &header) || errors.As(err, &alert) || strings.Contains(err.Error(), "tls: ")
}

func isConnect(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// String is the report as a short human-readable table.
func (r *Report) String() string {
	var b strings.Builder
	mode := "new TLS connection per device"
	if r.KeepAlive {
		mode = "keep-alive connections"
	}
	if r.TLSResumption {
		mode += ", TLS session resumption"
	}
	mode += ", " + r.KeyExchange
	csr := "no CSR"
	if r.CSR {
		csr = "CSR pre-generated"
		if !r.CSRPregenerated {
			csr = "CSR generated in the timed phase"
		}
	}
	if r.Transport != "" && r.Transport != device.TransportHTTPS {
		mode = strings.Replace(mode, "new TLS connection", "new MQTT connection", 1)
	}
	fmt.Fprintf(&b, "transport          %s\n", cmp.Or(r.Transport, device.TransportHTTPS))
	fmt.Fprintf(&b, "attestation        %s (%s; %s)\n", r.Attestation, csr, mode)
	fmt.Fprintf(&b, "devices            %d (concurrency %d", r.Devices, r.Concurrency)
	if r.Rate > 0 {
		fmt.Fprintf(&b, ", rate %.0f/s", r.Rate)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "succeeded          %d, failed %d in %.2fs\n", r.Succeeded, r.Failed, r.ElapsedSeconds)
	fmt.Fprintf(&b, "registrations/s    %.1f\n", r.RegistrationsPerSecond)
	l := r.LatencyMs
	fmt.Fprintf(&b, "latency ms         p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (mean %.1f)\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	fmt.Fprintf(&b, "TLS handshakes     %d full, %d resumed\n", r.TLSHandshakes.Full, r.TLSHandshakes.Resumed)
	fmt.Fprintf(&b, "client CPU         %.2f ms/registration\n", r.CPU.ClientMsPerRegistration)
	if r.CPU.ServerPID != 0 {
		fmt.Fprintf(&b, "server CPU         %.2f ms/registration (pid %d", r.CPU.ServerMsPerRegistration, r.CPU.ServerPID)
		for _, p := range r.CPU.ServerPIDs {
			fmt.Fprintf(&b, ", %d", p)
		}
		b.WriteString(")\n")
	}
	if r.CPU.DatabaseSeconds > 0 {
		fmt.Fprintf(&b, "database CPU       %.2f ms/registration\n", r.CPU.DatabaseMsPerRegistration)
	}
	for _, e := range r.PerEndpoint {
		fmt.Fprintf(&b, "endpoint           %s: %d succeeded, %d failed, %.1f/s, p50 %.1f  p99 %.1f ms\n", e.Endpoint, e.Succeeded, e.Failed, e.RegistrationsPerSecond, e.LatencyMs.P50, e.LatencyMs.P99)
	}
	if s := r.Store; s != nil {
		fmt.Fprintf(&b, "store              %.3f retries, %.3f conflicts, %.1f round trips, %.1f statements per registration\n", s.RetriesPerRegistration, s.ConflictsPerRegistration, s.RoundTripsPerRegistration, s.StatementsPerRegistration)
	}
	if r.CPU.MachineBusySeconds > 0 {
		fmt.Fprintf(&b, "machine busy       %.2f ms/registration over %d CPUs\n", r.CPU.MachineBusyMsPerRegistered, r.CPU.MachineCPUs)
	}
	fmt.Fprintf(&b, "load average       %.2f before, %.2f after\n", r.LoadAverage[0], r.LoadAverage[1])
	if r.PrepareSeconds > 0 || r.SetupSeconds > 0 || r.CleanupSeconds > 0 {
		fmt.Fprintf(&b, "untimed            setup %.2fs, prepare %.2fs, cleanup %.2fs\n", r.SetupSeconds, r.PrepareSeconds, r.CleanupSeconds)
	}
	if len(r.Errors) == 0 {
		b.WriteString("errors             none\n")
		return b.String()
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	b.WriteString("errors\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-24s %d  e.g. %s\n", k, r.Errors[k], r.ErrorSamples[k])
	}
	return b.String()
}
