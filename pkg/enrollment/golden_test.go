package enrollment

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", path, got)
	}
}

func marshalIndent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGoldenWireForm pins the DPS wire form of full documents: what a
// request becomes once decoded (read-only fields dropped, names
// normalised, certificate info computed), and what a GET answers
// (Redacted).
func TestGoldenWireForm(t *testing.T) {
	tests := []string{"individual_x509", "individual_symmetric", "group_symmetric", "group_x509"}
	for _, name := range tests {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".request.json"))
			if err != nil {
				t.Fatal(err)
			}
			var stored, redacted any
			if strings.HasPrefix(name, "group") {
				g, err := DecodeEnrollmentGroup(in)
				if err != nil {
					t.Fatalf("DecodeEnrollmentGroup: %v", err)
				}
				stored, redacted = g, g.Redacted()
			} else {
				e, err := DecodeIndividualEnrollment(in)
				if err != nil {
					t.Fatalf("DecodeIndividualEnrollment: %v", err)
				}
				stored, redacted = e, e.Redacted()
			}
			checkGolden(t, name+".golden.json", marshalIndent(t, stored))
			checkGolden(t, name+".redacted.golden.json", marshalIndent(t, redacted))
		})
	}
}
