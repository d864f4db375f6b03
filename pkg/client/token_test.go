package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTokenCachedUntilShortlyBeforeExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c, err := New(Config{
		ConnectionString: "HostName=h:1;SharedAccessKeyName=p;SharedAccessKey=" + base64.StdEncoding.EncodeToString([]byte("k")),
		TokenTTL:         time.Hour,
		Now:              func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	first := c.sas()
	tests := []struct {
		name    string
		advance time.Duration
		renewed bool
	}{
		{name: "same instant", advance: 0, renewed: false},
		{name: "half the lifetime", advance: 30 * time.Minute, renewed: false},
		{name: "just before the renewal margin", advance: 47*time.Minute + 59*time.Second, renewed: false},
		{name: "inside the renewal margin", advance: 48 * time.Minute, renewed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.mu.Lock()
			c.token, c.tokenExpiry = first, time.Unix(1_700_000_000, 0).Add(time.Hour)
			c.mu.Unlock()
			now = time.Unix(1_700_000_000, 0).Add(tt.advance)
			got := c.sas()
			if (got != first) != tt.renewed {
				t.Fatalf("renewed = %v, want %v", got != first, tt.renewed)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	good := "HostName=h;SharedAccessKeyName=p;SharedAccessKey=aGVsbG8="
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "defaults", cfg: Config{ConnectionString: good}, ok: true},
		{name: "bad connection string", cfg: Config{ConnectionString: "HostName=h"}},
		{name: "negative ttl", cfg: Config{ConnectionString: good, TokenTTL: -time.Second}},
		{name: "ttl too short", cfg: Config{ConnectionString: good, TokenTTL: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (c.apiVersion != DefaultAPIVersion || c.ttl != DefaultTokenTTL) {
				t.Fatalf("defaults not applied: %q %s", c.apiVersion, c.ttl)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"idScope":"0ne00000001"}`))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	n := 0
	c, err := New(Config{HostName: host, HTTPClient: srv.Client(), BearerToken: func(context.Context) (string, error) {
		n++
		if n == 2 {
			return "", errors.New("refresh refused")
		}
		return fmt.Sprintf("tok-%d", n), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSettings(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSettings(context.Background()); err == nil || !strings.Contains(err.Error(), "refresh refused") {
		t.Fatalf("err = %v, want the token source's error", err)
	}
	if _, err := c.GetSettings(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "Bearer tok-1" || got[1] != "Bearer tok-3" {
		t.Fatalf("Authorization headers %q", got)
	}
	if _, err := New(Config{BearerToken: func(context.Context) (string, error) { return "", nil }}); err == nil {
		t.Error("a bearer client without HostName")
	}
}
