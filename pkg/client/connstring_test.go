package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/zdps/zdps/pkg/client"
)

func TestParseConnectionString(t *testing.T) {
	const key = "c2VjcmV0LWtleS1ieXRlcw==" // "secret-key-bytes"
	tests := []struct {
		name    string
		in      string
		want    client.ConnectionString
		wantErr bool
	}{
		{name: "azure form", in: "HostName=localhost:8443;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=" + key,
			want: client.ConnectionString{HostName: "localhost:8443", SharedAccessKeyName: "provisioningserviceowner", SharedAccessKey: key}},
		{name: "keys case-insensitive, spaces and trailing semicolon", in: " hostname = dps.example.com ; SHAREDACCESSKEYNAME=reader;sharedaccesskey=" + key + ";",
			want: client.ConnectionString{HostName: "dps.example.com", SharedAccessKeyName: "reader", SharedAccessKey: key}},
		{name: "any order", in: "SharedAccessKey=" + key + ";SharedAccessKeyName=p;HostName=h",
			want: client.ConnectionString{HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: key}},
		{name: "empty", in: "  ", wantErr: true},
		{name: "no host", in: "SharedAccessKeyName=p;SharedAccessKey=" + key, wantErr: true},
		{name: "no policy", in: "HostName=h;SharedAccessKey=" + key, wantErr: true},
		{name: "no key", in: "HostName=h;SharedAccessKeyName=p", wantErr: true},
		{name: "key not base64", in: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not base64!", wantErr: true},
		{name: "unknown key", in: "HostName=h;DeviceId=d;SharedAccessKey=" + key, wantErr: true},
		{name: "duplicate key", in: "HostName=h;HostName=i;SharedAccessKeyName=p;SharedAccessKey=" + key, wantErr: true},
		{name: "not key=value", in: "HostName=h;oops;SharedAccessKeyName=p;SharedAccessKey=" + key, wantErr: true},
		{name: "url instead of host", in: "HostName=https://h/;SharedAccessKeyName=p;SharedAccessKey=" + key, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.ParseConnectionString(tt.in)
			if tt.wantErr {
				if !errors.Is(err, client.ErrInvalidConnectionString) {
					t.Fatalf("err = %v, want ErrInvalidConnectionString", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := client.ParseConnectionString(got.String())
			if err != nil || again != got {
				t.Fatalf("String() does not round-trip: %q -> %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseConnectionStringKeepsKeyOutOfErrors(t *testing.T) {
	const secret = "c2VjcmV0!!"
	_, err := client.ParseConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + secret)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{secret, "c2VjcmV0"} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q leaks the key", err)
		}
	}
}
