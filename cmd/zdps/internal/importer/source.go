package importer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Format is the input format.
type Format string

// Input formats.
const (
	CSV       Format = "csv"
	JSONLines Format = "jsonl"
)

// DetectFormat picks the format from a file name: .jsonl, .ndjson and .json
// are JSON Lines, anything else (and stdin) CSV.
func DetectFormat(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson", ".json":
		return JSONLines
	}
	return CSV
}

// ParseFormat parses a --format value.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "jsonl", "ndjson", "json":
		return JSONLines, nil
	}
	return "", fmt.Errorf("unknown format %q (use csv or jsonl)", s)
}

// maxLine bounds one JSON line or CSV certificate file: an enrollment is a
// few KB, so anything near this is a broken file, not a device.
const maxLine = 1 << 20

// row is one input record on its way through the import.
type row struct {
	line   int      // 1-based input line where the record starts
	fields []string // CSV: the record as read
	raw    []byte   // JSON Lines: the line as read
	size   int64    // input bytes the record spans (for progress)
	e      *enrollment.IndividualEnrollment
	err    error // local parse or validation failure; e is nil then
}

// source yields rows. next returns io.EOF at the end; any other error is a
// failure to read the input at all, which ends the import.
type source interface {
	next() (*row, error)
	// failedHeader and failedRecord shape the failed-rows CSV.
	failedHeader() []string
	failedRecord(r *row, reason string) []string
}

// CSV columns, by their lower-case header names.
const (
	colRegistrationID     = "registrationid"
	colAttestation        = "attestation"
	colPrimaryKey         = "primarykey"
	colSecondaryKey       = "secondarykey"
	colEndorsementKey     = "endorsementkey"
	colEKCertificate      = "endorsementkeycertificate"
	colCertificate        = "certificate"
	colDeviceID           = "deviceid"
	colIoTHubHostName     = "iothubhostname"
	colIoTHubs            = "iothubs"
	colAllocationPolicy   = "allocationpolicy"
	colProvisioningStatus = "provisioningstatus"
	colReason             = "reason"
)

var knownColumns = []string{colRegistrationID, colAttestation, colPrimaryKey, colSecondaryKey, colEndorsementKey, colEKCertificate,
	colCertificate, colDeviceID, colIoTHubHostName, colIoTHubs, colAllocationPolicy, colProvisioningStatus, colReason}

type csvSource struct {
	r       *csv.Reader
	header  []string
	index   map[string]int // column name -> field index
	reason  int            // index of a "reason" column, -1 if none
	baseDir string
	offset  int64
}

func newCSVSource(r io.Reader, baseDir string) (*csvSource, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false // a failed row's record is kept for the report
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("empty CSV: a header row naming the columns is required")
	}
	if err != nil {
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	s := &csvSource{r: cr, header: header, index: map[string]int{}, reason: -1, baseDir: baseDir, offset: cr.InputOffset()}
	// A UTF-8 byte order mark from spreadsheet exports is not part of the
	// first column's name.
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, k := range knownColumns {
			known = known || k == name
		}
		if !known {
			return nil, fmt.Errorf("CSV header: unknown column %q (columns: registrationId, attestation, primaryKey, secondaryKey, endorsementKey, certificate, deviceId, iotHubHostName, iotHubs, allocationPolicy, provisioningStatus)", h)
		}
		if _, dup := s.index[name]; dup {
			return nil, fmt.Errorf("CSV header: column %q appears twice", h)
		}
		s.index[name] = i
		if name == colReason {
			s.reason = i
		}
	}
	if _, ok := s.index[colRegistrationID]; !ok {
		return nil, fmt.Errorf("CSV header: a registrationId column is required")
	}
	return s, nil
}

func (s *csvSource) next() (*row, error) {
	rec, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	off := s.r.InputOffset()
	r := &row{fields: rec, size: off - s.offset}
	s.offset = off
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		// A malformed record fails alone; csv.Reader resumes at the next.
		r.line = pe.StartLine
		r.err = fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			r.err = fmt.Errorf("line %d: %d fields, the header has %d", pe.StartLine, len(rec), len(s.header))
		}
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading CSV: %w", err)
	}
	r.line, _ = s.r.FieldPos(0)
	r.e, r.err = s.enrollment(rec)
	if r.err != nil {
		r.err = fmt.Errorf("line %d: %w", r.line, r.err)
	}
	return r, nil
}

func (s *csvSource) get(rec []string, col string) string {
	if i, ok := s.index[col]; ok && i < len(rec) {
		return strings.TrimSpace(rec[i])
	}
	return ""
}

// enrollment builds and validates the enrollment of one CSV record with the
// same rules as the server, so that bad rows fail here, cheaply, with the
// line number.
func (s *csvSource) enrollment(rec []string) (*enrollment.IndividualEnrollment, error) {
	get := func(col string) string { return s.get(rec, col) }
	e := &enrollment.IndividualEnrollment{
		RegistrationID: get(colRegistrationID),
		DeviceID:       get(colDeviceID), Spec: enrollment.Spec{IoTHubHostName: get(colIoTHubHostName),
			AllocationPolicy:   get(colAllocationPolicy),
			ProvisioningStatus: get(colProvisioningStatus)},
	}
	for h := range strings.SplitSeq(get(colIoTHubs), ";") {
		if h = strings.TrimSpace(h); h != "" {
			e.IoTHubs = append(e.IoTHubs, h)
		}
	}
	att := get(colAttestation)
	if att == "" {
		att = enrollment.AttestationSymmetricKey
	}
	unused := func(t string, cols ...string) error {
		for _, c := range cols {
			if get(c) != "" {
				return fmt.Errorf("column %s does not apply to %s attestation", c, t)
			}
		}
		return nil
	}
	a := &enrollment.AttestationMechanism{}
	switch {
	case strings.EqualFold(att, enrollment.AttestationSymmetricKey):
		a.Type = enrollment.AttestationSymmetricKey
		if err := unused(a.Type, colEndorsementKey, colEKCertificate, colCertificate); err != nil {
			return nil, err
		}
		a.SymmetricKey = &enrollment.SymmetricKeyAttestation{PrimaryKey: get(colPrimaryKey), SecondaryKey: get(colSecondaryKey)}
	case strings.EqualFold(att, enrollment.AttestationX509):
		a.Type = enrollment.AttestationX509
		if err := unused(a.Type, colPrimaryKey, colSecondaryKey, colEndorsementKey, colEKCertificate); err != nil {
			return nil, err
		}
		if get(colCertificate) == "" {
			return nil, fmt.Errorf("x509 attestation needs a certificate")
		}
		cert, err := s.certificate(get(colCertificate))
		if err != nil {
			return nil, err
		}
		a.X509 = &enrollment.X509Attestation{ClientCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: cert}}}
	case strings.EqualFold(att, enrollment.AttestationTPM):
		a.Type = enrollment.AttestationTPM
		if err := unused(a.Type, colPrimaryKey, colSecondaryKey, colCertificate); err != nil {
			return nil, err
		}
		if get(colEndorsementKey) == "" {
			return nil, fmt.Errorf("tpm attestation needs an endorsementKey")
		}
		a.TPM = &enrollment.TPMAttestation{EndorsementKey: get(colEndorsementKey)}
		if v := get(colEKCertificate); v != "" {
			cert, err := s.certificate(v)
			if err != nil {
				return nil, err
			}
			a.TPM.EndorsementKeyCertificate = cert
		}
	default:
		return nil, fmt.Errorf("attestation %q is not symmetricKey, x509 or tpm", att)
	}
	e.Attestation = a
	if err := prepare(e); err != nil {
		return nil, err
	}
	return e, nil
}

// certificate resolves a certificate column (certificate,
// endorsementKeyCertificate): inline PEM, a file, or inline base64 DER.
func (s *csvSource) certificate(v string) (string, error) {
	if strings.HasPrefix(v, "-----BEGIN") {
		return v, nil
	}
	path := v
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.baseDir, path)
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		if looksLikePath(v) {
			return "", fmt.Errorf("certificate file %s: not found", path)
		}
		return v, nil // base64 DER, checked by validation
	}
	if st.Size() > maxLine {
		return "", fmt.Errorf("certificate file %s is larger than %d bytes", path, maxLine)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("certificate file: %w", err)
	}
	if block, _ := pem.Decode(b); block != nil {
		return string(b), nil
	}
	return base64.StdEncoding.EncodeToString(b), nil // DER file
}

// looksLikePath tells a missing file from inline base64 (which may contain
// "/" but never a file extension or a backslash).
func looksLikePath(v string) bool {
	switch strings.ToLower(filepath.Ext(v)) {
	case ".pem", ".crt", ".cer", ".der":
		return true
	}
	return strings.Contains(v, `\`) || strings.HasPrefix(v, ".")
}

func (s *csvSource) failedHeader() []string {
	if s.reason >= 0 {
		return s.header
	}
	return append(append([]string(nil), s.header...), "reason")
}

func (s *csvSource) failedRecord(r *row, reason string) []string {
	out := make([]string, len(s.header), len(s.header)+1)
	copy(out, r.fields)
	if s.reason >= 0 {
		out[s.reason] = reason
		return out
	}
	return append(out, reason)
}

type jsonlSource struct {
	r    *bufio.Reader
	line int
}

func newJSONLSource(r io.Reader) *jsonlSource {
	return &jsonlSource{r: bufio.NewReaderSize(r, 64<<10)}
}

func (s *jsonlSource) next() (*row, error) {
	var carried int64 // blank lines count towards the next row's size
	for {
		var buf []byte
		var size int64
		tooLong, eof := false, false
		for {
			chunk, err := s.r.ReadSlice('\n')
			size += int64(len(chunk))
			if !tooLong && len(buf)+len(chunk) <= maxLine {
				buf = append(buf, chunk...)
			} else {
				tooLong, buf = true, nil
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				eof = true
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading JSON Lines: %w", err)
			}
			break
		}
		if size == 0 && eof {
			return nil, io.EOF
		}
		s.line++
		r := &row{line: s.line, size: size + carried, raw: bytes.TrimSpace(buf)}
		switch {
		case tooLong:
			r.raw = nil
			r.err = fmt.Errorf("line %d: longer than %d bytes", s.line, maxLine)
			return r, nil
		case len(r.raw) == 0:
			carried += size
			if eof {
				return nil, io.EOF
			}
			continue
		}
		e, err := enrollment.DecodeIndividualEnrollment(r.raw)
		if err == nil {
			err = prepare(e)
		}
		if err != nil {
			r.err = fmt.Errorf("line %d: %w", s.line, err)
			return r, nil
		}
		r.e = e
		return r, nil
	}
}

func (s *jsonlSource) failedHeader() []string { return []string{"line", "record", "reason"} }

func (s *jsonlSource) failedRecord(r *row, reason string) []string {
	return []string{strconv.Itoa(r.line), string(r.raw), reason}
}

// prepare validates e as the server will and drops what the server
// computes itself (certificate info), so that the bulk body stays small.
func prepare(e *enrollment.IndividualEnrollment) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if x := e.Attestation.X509; x != nil && x.ClientCertificates != nil {
		for _, c := range []*enrollment.X509CertificateWithInfo{x.ClientCertificates.Primary, x.ClientCertificates.Secondary} {
			if c != nil {
				c.Info = nil
			}
		}
	}
	return nil
}
