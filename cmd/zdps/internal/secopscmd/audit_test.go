package secopscmd

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "", want: time.Time{}},
		{in: "2026-01-02T15:04:05Z", want: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{in: "2026-01-02T16:04:05+01:00", want: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "0s", want: now},
		{in: "-5m", wantErr: true},
		{in: "-1d", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "d", wantErr: true},
		{in: "2026-01-02", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseWhen("--since", tt.in, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !got.Equal(tt.want) {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
