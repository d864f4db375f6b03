package storespec

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, in string
		want     Spec
		err      bool
	}{
		{"default", "", Spec{Kind: Bolt, Path: filepath.Join("data", DBFile)}, false},
		{"bolt", "bolt", Spec{Kind: Bolt, Path: filepath.Join("data", DBFile)}, false},
		{"bolt file", "bolt:/x/y.db", Spec{Kind: Bolt, Path: "/x/y.db"}, false},
		{"bolt directory", "bolt:" + dir, Spec{Kind: Bolt, Path: filepath.Join(dir, DBFile)}, false},
		{"bolt without path", "bolt:", Spec{}, true},
		{"postgres", "postgres://u@h/db?sslmode=disable", Spec{Kind: Postgres, URL: "postgres://u@h/db?sslmode=disable"}, false},
		{"postgresql with schema", "postgresql://u@h/db?schema=s1", Spec{Kind: Postgres, URL: "postgresql://u@h/db", Schema: "s1"}, false},
		{"other scheme", "mysql://h/db", Spec{}, true},
		{"plain path", "/var/lib/zdps", Spec{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, "data")
			if tc.err {
				if err == nil {
					t.Fatalf("Parse = %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestStringHidesPassword(t *testing.T) {
	s, err := Parse("postgres://zdps:s3cret@db.example.net/zdps?schema=prod", "")
	if err != nil {
		t.Fatal(err)
	}
	if out := s.String(); strings.Contains(out, "s3cret") || !strings.Contains(out, "db.example.net") || !strings.Contains(out, "prod") {
		t.Fatalf("String = %q", out)
	}
	if _, err := Parse("mysql://u:s3cret@h/db", ""); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v shows the password", err)
	}
}
