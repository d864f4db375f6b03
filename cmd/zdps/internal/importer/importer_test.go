package importer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/cmd/zdps/internal/importer"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/client/clienttest"
	"github.com/zdps/zdps/pkg/enrollment"
)

func setup(t *testing.T) (*client.Client, *clienttest.Server) {
	t.Helper()
	srv := clienttest.NewServer(t)
	c, err := client.New(client.Config{ConnectionString: srv.ConnectionString(), RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// run imports input and returns the summary, the error and the failed-rows
// file's records (nil when none was written).
func run(t *testing.T, c importer.Bulker, cfg importer.Config, input string) (importer.Summary, error, [][]string) {
	t.Helper()
	failedPath := filepath.Join(t.TempDir(), "failed.csv")
	cfg.Client = c
	cfg.Format = cmpOr(cfg.Format, importer.CSV)
	cfg.BatchSize = cmpOr(cfg.BatchSize, 100)
	cfg.Parallel = cmpOr(cfg.Parallel, 4)
	if cfg.Backoff == nil {
		cfg.Backoff = func(int) time.Duration { return time.Millisecond }
	}
	cfg.OpenFailed = func() (io.WriteCloser, error) { return os.Create(failedPath) }
	sum, err := importer.Run(t.Context(), cfg, strings.NewReader(input))
	if sum.Read != sum.Created+sum.AlreadyPresent+sum.Failed {
		t.Errorf("summary does not add up: %+v", sum)
	}
	b, rerr := os.ReadFile(failedPath)
	if errors.Is(rerr, os.ErrNotExist) {
		if sum.Failed != 0 {
			t.Errorf("%d rows failed but no failed-rows file", sum.Failed)
		}
		return sum, err, nil
	}
	recs, cerr := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if cerr != nil {
		t.Fatalf("failed-rows file is not CSV: %v", cerr)
	}
	if int64(len(recs)-1) != sum.Failed {
		t.Errorf("failed-rows file has %d rows, summary says %d", len(recs)-1, sum.Failed)
	}
	return sum, err, recs
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func generate(n int) string {
	var b strings.Builder
	b.WriteString("registrationId,attestation,provisioningStatus\n")
	for i := range n {
		fmt.Fprintf(&b, "device-%06d,symmetricKey,enabled\n", i)
	}
	return b.String()
}

// TestImport10kWithOutageAndRerun is the resumability contract: a long
// outage fails the rows it hits (with reasons), and re-running the same
// file completes the import without creating anything twice.
func TestImport10kWithOutageAndRerun(t *testing.T) {
	const n = 10_000
	c, srv := setup(t)
	input := generate(n)

	// After 20 good bulk calls the service is down for good (retries
	// exhausted), as if it had crashed mid-import.
	var calls atomic.Int64
	var inFlight, maxInFlight atomic.Int64
	srv.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if cur <= m || maxInFlight.CompareAndSwap(m, cur) {
				break
			}
		}
		if calls.Add(1) > 20 {
			clienttest.Fail(w, http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
	sum, err, failedRows := run(t, c, importer.Config{Retries: 2}, input)
	// Once every worker has given up on a batch, the import stops instead
	// of failing the rest of the file row by row.
	if !errors.Is(err, importer.ErrAborted) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("first run: err = %v, want an abort", err)
	}
	// It stops within a few batches per worker (each may give up on a
	// couple before all have, plus the queued ones), far from the 10,000.
	if sum.Created != 2000 || sum.Failed == 0 || sum.Read >= n || sum.Read > 2000+int64(4*100*5) {
		t.Fatalf("first run: %+v", sum)
	}
	if maxInFlight.Load() > 4 {
		t.Fatalf("%d bulk calls in flight, want at most --parallel=4", maxInFlight.Load())
	}
	if got := failedRows[0]; strings.Join(got, ",") != "registrationId,attestation,provisioningStatus,reason" {
		t.Fatalf("failed-rows header %v", got)
	}
	if r := failedRows[1]; !strings.HasPrefix(r[0], "device-") || r[1] != "symmetricKey" || !strings.Contains(r[3], "gave up after 3 attempts") || !strings.Contains(r[3], "503") {
		t.Fatalf("failed row %v", r)
	}

	// The service is back: the same file completes the import.
	srv.Intercept(nil)
	sum, err, failedRows = run(t, c, importer.Config{Retries: 2}, input)
	if err != nil {
		t.Fatal(err)
	}
	// A bulk call in flight when the first run aborted may have been
	// stored after that run counted it failed: the second run finds it
	// present. Every row is stored exactly once either way (checked below).
	if sum.Read != n || sum.Created+sum.AlreadyPresent != n || sum.AlreadyPresent < 2000 || sum.AlreadyPresent > 2000+4*100 || sum.Failed != 0 || failedRows != nil {
		t.Fatalf("second run: %+v, failed rows %v", sum, failedRows)
	}
	if got := len(srv.EnrollmentIDs()); got != n {
		t.Fatalf("%d enrollments stored, want %d", got, n)
	}
	if got := srv.Stats().BulkCreated; got != n {
		t.Fatalf("%d creations over both runs, want exactly %d", got, n)
	}
}

// TestImportRidesOutTransientFailures: 503s for a while, answers lost
// after the write (the connection drops), per-item server errors and
// throttling are all retried; nothing fails and nothing is created twice.
func TestImportRidesOutTransientFailures(t *testing.T) {
	const n = 3_000 // 30 batches: enough for every fault window below
	tests := []struct {
		name  string
		fault func(call int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool
	}{
		{name: "503 for a while", fault: func(call int64, w http.ResponseWriter, _ *http.Request, _ http.Handler) bool {
			if call >= 10 && call < 22 {
				clienttest.Fail(w, http.StatusServiceUnavailable)
				return true
			}
			return false
		}},
		{name: "connection closed after the write", fault: func(call int64, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if call%7 == 3 {
				next.ServeHTTP(discard{}, r) // the service commits...
				clienttest.DropConnection(w) // ...and the answer is lost
				return true
			}
			return false
		}},
		{name: "connection closed before the write", fault: func(call int64, w http.ResponseWriter, _ *http.Request, _ http.Handler) bool {
			if call%5 == 1 {
				clienttest.DropConnection(w)
				return true
			}
			return false
		}},
		{name: "throttled", fault: func(call int64, w http.ResponseWriter, _ *http.Request, _ http.Handler) bool {
			if call == 2 {
				w.Header().Set("Retry-After", "0")
				clienttest.Fail(w, http.StatusTooManyRequests)
				return true
			}
			return false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := setup(t)
			var calls atomic.Int64
			srv.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if !tt.fault(calls.Add(1), w, r, next) {
					next.ServeHTTP(w, r)
				}
			})
			// Enough retries that no batch can exhaust them in the
			// fault windows above, however the calls interleave.
			sum, err, _ := run(t, c, importer.Config{Retries: 25}, generate(n))
			if err != nil {
				t.Fatal(err)
			}
			if sum.Read != n || sum.Failed != 0 || sum.Created+sum.AlreadyPresent != n {
				t.Fatalf("summary %+v", sum)
			}
			if got := srv.Stats().BulkCreated; got != n || sum.Created+sum.AlreadyPresent != got {
				t.Fatalf("%d creations, want %d", got, n)
			}
		})
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// flaky answers per-item 500s for the first attempt of every item.
type flaky struct {
	c    importer.Bulker
	mu   sync.Mutex
	seen map[string]bool
}

func (f *flaky) BulkEnrollments(ctx context.Context, mode string, items []*enrollment.IndividualEnrollment) (*enrollment.BulkOperationResult, error) {
	f.mu.Lock()
	var pass []*enrollment.IndividualEnrollment
	res := &enrollment.BulkOperationResult{}
	for _, e := range items {
		if !f.seen[e.RegistrationID] {
			f.seen[e.RegistrationID] = true
			res.Errors = append(res.Errors, enrollment.BulkOperationError{RegistrationID: e.RegistrationID, ErrorCode: 500001, ErrorStatus: "store busy"})
			continue
		}
		pass = append(pass, e)
	}
	f.mu.Unlock()
	if len(pass) > 0 {
		r, err := f.c.BulkEnrollments(ctx, mode, pass)
		if err != nil {
			return nil, err
		}
		res.Errors = append(res.Errors, r.Errors...)
	}
	res.IsSuccessful = len(res.Errors) == 0
	return res, nil
}

func TestPerItemServerErrorsAreRetried(t *testing.T) {
	c, srv := setup(t)
	sum, err, _ := run(t, &flaky{c: c, seen: map[string]bool{}}, importer.Config{Retries: 1}, generate(250))
	if err != nil || sum.Created != 250 || sum.Failed != 0 {
		t.Fatalf("%+v %v", sum, err)
	}
	if len(srv.EnrollmentIDs()) != 250 {
		t.Fatal("not all stored")
	}
	sum, err, rows := run(t, &flaky{c: c, seen: map[string]bool{}}, importer.Config{Retries: 0}, "registrationId\nnew-1\n")
	if err != nil || sum.Failed != 1 || !strings.Contains(rows[1][1], "store busy (code 500001)") {
		t.Fatalf("without retries: %+v %v %v", sum, err, rows)
	}
}

func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestRowsAndFailedFile(t *testing.T) {
	c, srv := setup(t)
	// A static enrollment must name a linked hub.
	if _, err := c.PutHub(t.Context(), &enrollment.Hub{Name: "hub1.example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM := selfSigned(t, "x509-dev")
	if err := os.WriteFile(filepath.Join(dir, "dev.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if err := os.WriteFile(filepath.Join(dir, "dev.der"), block.Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	inline := string(certPEM)
	const key = "c2VjcmV0LWtleS1vZi0zMi1ieXRlcy4uLi4uLi4uLi4="
	input := "RegistrationID,Attestation,PrimaryKey,SecondaryKey,EndorsementKey,Certificate,DeviceID,IoTHubHostName,IoTHubs,AllocationPolicy,ProvisioningStatus\n" +
		"sym-1,,,,,,dev-1,,hub1.example.com;hub2.example.com,hashed,\n" +
		"sym-2,symmetrickey," + key + "," + key + ",,,,,,,disabled\n" +
		"x509-file,x509,,,,dev.pem,,,hub1.example.com,static,\n" +
		"x509-der,x509,,,,dev.der,,,,,\n" +
		"x509-inline,x509,,,,\"" + inline + "\",,,,,\n" +
		"tpm-1,tpm,,,AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtaaNYw==,,,,,,\n" +
		"bad id!,,,,,,,,,,\n" +
		"bad-key,,not-base64,,,,,,,,\n" +
		"bad-att,password,,,,,,,,,\n" +
		"no-cert,x509,,,,,,,,,\n" +
		"missing-file,x509,,,,missing.pem,,,,,\n" +
		"bad-status,,,,,,,,,,paused\n" +
		"short,row\n" +
		"sym-1,,,,,,dev-1,,hub1.example.com;hub2.example.com,hashed,\n" // a duplicate: already present
	sum, err, rows := run(t, c, importer.Config{BaseDir: dir, BatchSize: 3}, input)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 14 || sum.Created != 6 || sum.AlreadyPresent != 1 || sum.Failed != 7 {
		t.Fatalf("summary %+v; failed rows %q", sum, rows)
	}
	want := map[string]string{
		"bad id!":      "line 16", // the inline PEM spans lines 6 to 15
		"bad-key":      "line 17",
		"bad-att":      "password",
		"no-cert":      "certificate",
		"missing-file": "not found",
		"bad-status":   "paused",
		"short":        "2 fields, the header has 11",
	}
	for _, r := range rows[1:] {
		reason := r[len(r)-1]
		if w, ok := want[r[0]]; !ok || !strings.Contains(reason, w) {
			t.Errorf("row %q: reason %q, want it to mention %q", r[0], reason, w)
		}
		delete(want, r[0])
		if len(r) != 12 {
			t.Errorf("row %q has %d columns, want the 11 original ones plus reason", r[0], len(r))
		}
	}
	if len(want) != 0 {
		t.Errorf("rows missing from the failed file: %v", want)
	}
	for id, check := range map[string]func(*enrollment.IndividualEnrollment) bool{
		"sym-1": func(e *enrollment.IndividualEnrollment) bool {
			return e.DeviceID == "dev-1" && len(e.IoTHubs) == 2 && e.AllocationPolicy == "hashed" && e.Attestation.SymmetricKey.PrimaryKey != ""
		},
		"sym-2": func(e *enrollment.IndividualEnrollment) bool {
			return e.Attestation.SymmetricKey.PrimaryKey == key && e.ProvisioningStatus == "disabled"
		},
		"x509-file": func(e *enrollment.IndividualEnrollment) bool {
			return e.Attestation.X509.ClientCertificates.Primary.Certificate == string(certPEM) && e.AllocationPolicy == "static"
		},
		"x509-der": func(e *enrollment.IndividualEnrollment) bool {
			return e.Attestation.X509.ClientCertificates.Primary.Certificate != ""
		},
		"x509-inline": func(e *enrollment.IndividualEnrollment) bool { return e.Attestation.X509 != nil },
		"tpm-1":       func(e *enrollment.IndividualEnrollment) bool { return e.Attestation.TPM.EndorsementKey != "" },
	} {
		e, ok := srv.Enrollment(id)
		if !ok || !check(e) {
			t.Errorf("%s stored as %+v", id, e)
		}
	}

	// The failed-rows file can be fixed and imported as it is: its reason
	// column is ignored.
	var fixed bytes.Buffer
	w := csv.NewWriter(&fixed)
	_ = w.Write(rows[0])
	for _, r := range rows[1:] {
		if r[0] == "bad-status" {
			r[10] = "enabled"
			_ = w.Write(r)
		}
	}
	w.Flush()
	sum, err, _ = run(t, c, importer.Config{}, fixed.String())
	if err != nil || sum.Created != 1 || sum.Failed != 0 {
		t.Fatalf("re-import of the fixed failed rows: %+v %v", sum, err)
	}
}

// TestEKCertificateColumn: TPM rows carry the TPM's EK certificate as a
// file (DER or PEM) or inline; other attestations refuse the column.
func TestEKCertificateColumn(t *testing.T) {
	c, srv := setup(t)
	dir := t.TempDir()
	certPEM := selfSigned(t, "ek") // the service checks it against the EK; here only its form matters
	block, _ := pem.Decode(certPEM)
	if err := os.WriteFile(filepath.Join(dir, "ek.der"), block.Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	const ek = "AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtaaNYw=="
	b64 := base64.StdEncoding.EncodeToString(block.Bytes)
	input := "registrationId,attestation,endorsementKey,endorsementKeyCertificate\n" +
		"tpm-file,tpm," + ek + ",ek.der\n" +
		"tpm-inline,tpm," + ek + "," + b64 + "\n" +
		"tpm-missing,tpm," + ek + ",missing.der\n" +
		"sym,symmetricKey,,ek.der\n"
	sum, err, rows := run(t, c, importer.Config{BaseDir: dir}, input)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 2 || sum.Failed != 2 {
		t.Fatalf("summary %+v; failed rows %q", sum, rows)
	}
	for _, id := range []string{"tpm-file", "tpm-inline"} {
		e, ok := srv.Enrollment(id)
		if !ok || e.Attestation.TPM.EndorsementKeyCertificate != b64 {
			t.Errorf("%s stored as %+v", id, e)
		}
	}
	for _, r := range rows[1:] {
		want := map[string]string{"tpm-missing": "not found", "sym": "does not apply"}[r[0]]
		if reason := r[len(r)-1]; want == "" || !strings.Contains(reason, want) {
			t.Errorf("row %q: reason %q, want it to mention %q", r[0], reason, want)
		}
	}
}

func TestJSONLines(t *testing.T) {
	c, srv := setup(t)
	input := `{"registrationId":"j-1","attestation":{"type":"symmetricKey"},"iotHubs":["h.example.com"]}

{"registrationId":"j-2","attestation":{"type":"tpm","tpm":{"endorsementKey":"AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAtaaNYw=="}},"etag":"\"ignored\""}
{"registrationId":"j-3","attestation":{"type":"symmetricKey"},"unknownField":1}
not json
{"registrationId":"j-1","attestation":{"type":"symmetricKey"}}
{"registrationId":"j-4","attestation":{"type":"symmetricKey"}}`
	sum, err, rows := run(t, c, importer.Config{Format: importer.JSONLines}, input)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 6 || sum.Created != 3 || sum.AlreadyPresent != 1 || sum.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if strings.Join(rows[0], ",") != "line,record,reason" || rows[1][0] != "4" || !strings.Contains(rows[1][1], "unknownField") || rows[2][0] != "5" {
		t.Fatalf("failed rows %v", rows)
	}
	if got := strings.Join(srv.EnrollmentIDs(), ","); got != "j-1,j-2,j-4" {
		t.Fatalf("stored %s", got)
	}
}

func TestBadBatchIsSplitToIsolateTheRow(t *testing.T) {
	c, srv := setup(t)
	// The service refuses any call carrying "poison" as a whole.
	srv.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte("poison")) {
			clienttest.Fail(w, http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
	input := generate(100) + "poison,,\n"
	sum, err, rows := run(t, c, importer.Config{BatchSize: 1000}, input)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 100 || sum.Failed != 1 || rows[1][0] != "poison" || !strings.Contains(rows[1][3], "400") {
		t.Fatalf("%+v %v", sum, rows)
	}
}

func TestImportErrors(t *testing.T) {
	c, srv := setup(t)
	tests := []struct {
		name  string
		cfg   importer.Config
		input string
		want  string
	}{
		{name: "empty input", input: "", want: "header row"},
		{name: "unknown column", input: "registrationId,colour\nx,red\n", want: `unknown column "colour"`},
		{name: "no registrationId column", input: "deviceId\nx\n", want: "registrationId column is required"},
		{name: "duplicate column", input: "registrationId,RegistrationId\nx,y\n", want: "twice"},
		{name: "zero batch size", cfg: importer.Config{BatchSize: -1}, input: "registrationId\nx\n", want: "batch size"},
		{name: "negative retries", cfg: importer.Config{Retries: -1}, input: "registrationId\nx\n", want: "retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err, _ := run(t, c, tt.cfg, tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}

	t.Run("refused credentials abort", func(t *testing.T) {
		srv.Intercept(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
			clienttest.Fail(w, http.StatusUnauthorized)
		})
		defer srv.Intercept(nil)
		sum, err, _ := run(t, c, importer.Config{BatchSize: 10, Parallel: 2}, generate(10_000))
		if !errors.Is(err, importer.ErrAborted) || !errors.Is(err, client.ErrUnauthorized) {
			t.Fatalf("err = %v", err)
		}
		if sum.Read >= 10_000 || sum.Created != 0 {
			t.Fatalf("did not stop early: %+v", sum)
		}
	})
}

func TestDetectFormat(t *testing.T) {
	for _, tt := range []struct {
		name string
		want importer.Format
	}{
		{"devices.csv", importer.CSV}, {"devices.jsonl", importer.JSONLines}, {"D.NDJSON", importer.JSONLines},
		{"d.json", importer.JSONLines}, {"-", importer.CSV}, {"devices", importer.CSV},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := importer.DetectFormat(tt.name); got != tt.want {
				t.Fatalf("got %s", got)
			}
		})
	}
}
