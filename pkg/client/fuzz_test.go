package client_test

import (
	"testing"

	"github.com/zdps/zdps/pkg/client"
)

// FuzzParseConnectionString: parsing never panics, and whatever parses
// round-trips through String unchanged.
func FuzzParseConnectionString(f *testing.F) {
	for _, s := range []string{
		"HostName=localhost:8443;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=c2VjcmV0",
		"hostname=h;sharedaccesskeyname=p;sharedaccesskey=AAAA;",
		"HostName=h;HostName=h",
		"=;=;",
		"SharedAccessKey==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := client.ParseConnectionString(s)
		if err != nil {
			return
		}
		again, err := client.ParseConnectionString(cs.String())
		if err != nil || again != cs {
			t.Fatalf("%q parsed to %+v, which formats to %q and parses to %+v, %v", s, cs, cs.String(), again, err)
		}
	})
}
