package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/zdps/zdps", Version: "v0.0.0-20261203081213-320cc1a3c9d2+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "320cc1a3c9d2b8e8da5fec4263e3f1f2a2c6190c"},
			{Key: "vcs.time", Value: "2026-12-03T08:12:13Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tagged := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/zdps/zdps", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"},
			{Key: "vcs.modified", Value: "false"},
		},
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"stamped from a dirty checkout", stamped, true,
			"zdps v0.0.0-20261203081213-320cc1a3c9d2+dirty (commit 320cc1a3c9d2b8e8da5fec4263e3f1f2a2c6190c, modified, 2026-12-03T08:12:13Z) go1.26.8 " + platform},
		{"tagged, clean", tagged, true, "zdps v1.2.3 (commit abc123) go1.26.8 " + platform},
		// go test, go run and -buildvcs=false record no version and no VCS.
		{"no VCS information", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/zdps/zdps", Version: "(devel)"}}, true,
			"zdps (devel) (commit unknown) go1.26.8 " + platform},
		{"empty main module", &debug.BuildInfo{GoVersion: "go1.26.8"}, true, "zdps (devel) (commit unknown) go1.26.8 " + platform},
		{"no build information", nil, false, "zdps (devel) (commit unknown) " + runtime.Version() + " " + platform},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readBuildVersion(tc.bi, tc.ok).String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestCurrentVersion checks the format on this binary's own build
// information, which under go test has no VCS stamp.
func TestCurrentVersion(t *testing.T) {
	re := regexp.MustCompile(`^zdps \S+ \(commit [0-9a-f]+(, modified)?(, \S+)?\) go\S+ \S+/\S+$|^zdps \S+ \(commit unknown\) go\S+ \S+/\S+$`)
	if got := currentVersion().String(); !re.MatchString(got) {
		t.Errorf("version line %q does not match %s", got, re)
	}
}
