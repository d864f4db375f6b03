package consolecmd_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil/cmdtest"
	"github.com/zdps/zdps/cmd/zdps/internal/consolecmd"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
)

var zdps = cmdtest.Runner(consolecmd.NewConsoleCmd)

func TestConsoleLink(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	s := zdpstest.Start(t)
	code, out, errOut := zdps(t, "--data-dir", s.DataDir, "console", "link")
	if code != 0 || !strings.HasPrefix(out, "https://"+s.Addr()+"/console/link/") || !strings.Contains(out, "one use, for policy:provisioningserviceowner") {
		t.Fatalf("console link: %d %q %q", code, out, errOut)
	}
	code, out, _ = zdps(t, "--data-dir", s.DataDir, "-o", "json", "console", "link")
	var l client.ConsoleLink
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || l.Principal != "policy:provisioningserviceowner" || l.Expires.IsZero() {
		t.Fatalf("console link -o json: %d %q %v", code, out, err)
	}
	// The link opens the confirmation page (and is not used up by that).
	resp, err := s.HTTPClient().Get(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="signin"`) {
		t.Fatalf("GET link: %d", resp.StatusCode)
	}
	// A key no policy holds: a one-line refusal that shows no key.
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3I="
	cs := "HostName=" + s.Addr() + ";SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=" + wrongKey
	code, out, errOut = zdps(t, "--data-dir", s.DataDir, "--connection-string", cs, "console", "link")
	if code == 0 || out != "" || strings.Contains(errOut, wrongKey) || !strings.Contains(errOut, "console sign-in link") {
		t.Fatalf("wrong key: %d %q %q", code, out, errOut)
	}
}
