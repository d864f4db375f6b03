package sitecmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil/cmdtest"
	"github.com/zdps/zdps/cmd/zdps/internal/enrollcmd"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

var run = cmdtest.Runner(NewSiteCmd, enrollcmd.NewEnrollmentCmd, enrollcmd.NewGroupCmd)

func TestSiteCommands(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	for _, h := range []string{"hub-a.example.net", "hub-b.example.net"} {
		if _, err := c.PutHub(ctx, &enrollment.Hub{Name: h}, ""); err != nil {
			t.Fatal(err)
		}
	}
	data := []string{"--data-dir", srv.DataDir}
	zdps := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := run(t, append(args, data...)...)
		if code != want {
			t.Fatalf("zdps %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}

	out, _ := zdps(0, "site", "create", "plant-1", "--hub", "hub-a.example.net")
	if !strings.Contains(out, "plant-1") || !strings.Contains(out, "hub-a.example.net") {
		t.Fatalf("create:\n%s", out)
	}
	_, errOut := zdps(1, "site", "create", "plant-1", "--hub", "hub-a.example.net")
	if !strings.Contains(errOut, "already exists") {
		t.Fatalf("second create: %s", errOut)
	}
	zdps(0, "site", "create", "plant-1", "--hub", "hub-a.example.net,hub-b.example.net", "--update")
	_, errOut = zdps(1, "site", "create", "Plant_1")
	if !strings.Contains(errOut, "invalid site name") {
		t.Fatalf("bad name: %s", errOut)
	}
	out, _ = zdps(0, "site", "list")
	if !strings.Contains(out, "hub-a.example.net,hub-b.example.net") {
		t.Fatalf("list:\n%s", out)
	}
	out, _ = zdps(0, "site", "show", "plant-1", "-o", "json")
	var s enrollment.Site
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Name != "plant-1" || len(s.Hubs) != 2 {
		t.Fatalf("show: %v\n%s", err, out)
	}

	// A gateway at create, a device and a group assigned afterwards.
	zdps(0, "enrollment", "create", "gw-1", "--attestation", "symmetricKey", "--iot-edge", "--site", "plant-1")
	gw, err := c.GetEnrollment(ctx, "gw-1")
	if err != nil || gw.Site != "plant-1" || gw.Capabilities == nil || !gw.Capabilities.IoTEdge {
		t.Fatalf("gateway enrollment %+v, %v", gw, err)
	}
	zdps(0, "enrollment", "create", "dev-1", "--attestation", "symmetricKey")
	before, _ := c.EnrollmentKeys(ctx, "dev-1")
	out, _ = zdps(0, "site", "assign", "plant-1", "--enrollment", "dev-1")
	if !strings.Contains(out, "site: plant-1") {
		t.Fatalf("assign:\n%s", out)
	}
	after, _ := c.EnrollmentKeys(ctx, "dev-1")
	if e, _ := c.GetEnrollment(ctx, "dev-1"); e.Site != "plant-1" || after.SymmetricKey.PrimaryKey != before.SymmetricKey.PrimaryKey {
		t.Fatalf("assigned enrollment: site %q, keys kept %v", e.Site, after.SymmetricKey.PrimaryKey == before.SymmetricKey.PrimaryKey)
	}
	zdps(0, "group", "create", "line-3", "--attestation", "symmetricKey")
	zdps(0, "site", "assign", "plant-1", "--group", "line-3")
	if g, _ := c.GetGroup(ctx, "line-3"); g.Site != "plant-1" {
		t.Fatalf("group site %q", g.Site)
	}
	zdps(0, "site", "unassign", "--group", "line-3")
	if g, _ := c.GetGroup(ctx, "line-3"); g.Site != "" {
		t.Fatalf("group site after unassign %q", g.Site)
	}
	for _, bad := range [][]string{
		{"site", "assign", "plant-1"},
		{"site", "assign", "plant-1", "--enrollment", "dev-1", "--group", "line-3"},
		{"site", "assign", "nowhere", "--enrollment", "dev-1"},
		{"site", "assign", "plant-1", "--enrollment", "no-such"},
	} {
		zdps(1, bad...)
	}

	// The gateway registers and reports; status shows it.
	keys, err := c.EnrollmentKeys(ctx, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	res, err := device.Register(ctx, device.Config{Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: "gw-1",
		SymmetricKey: key, GenerateKey: true, RootCAs: srv.RootCAs(), MaxWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := res.TLSCertificate()
	tlsCfg := srv.TLSConfig()
	tlsCfg.Certificates = []tls.Certificate{cert}
	sync, notAfter := time.Now().Add(-time.Minute), time.Now().Add(29*24*time.Hour)
	body, _ := json.Marshal(dps.GatewayStatus{LastSync: &sync, Backlog: 42, CANotAfter: &notAfter, CASerial: "0abc"})
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}).Post("https://"+srv.Addr()+dps.GatewayPrefix+"/status", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status report: %v %v", resp, err)
	}
	resp.Body.Close()
	out, _ = zdps(0, "site", "status", "plant-1")
	if !strings.Contains(out, "GATEWAY") || !strings.Contains(out, "gw-1") || !strings.Contains(out, "42") || !strings.Contains(out, "0abc") {
		t.Fatalf("status:\n%s", out)
	}
	out, _ = zdps(0, "site", "delete", "plant-1")
	if !strings.Contains(out, `site "plant-1" deleted`) {
		t.Fatalf("delete:\n%s", out)
	}
	zdps(1, "site", "show", "plant-1")
}
