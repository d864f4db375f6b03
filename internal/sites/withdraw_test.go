package sites

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// A gateway that loses its right loses its delegated CAs: they are stored
// revoked among the issued certificates, so central's CRL lists them.
func TestSiteCAsWithdrawn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		group   bool
		change  func(e *env, id string)
		revoked bool
	}{
		{"registration deleted", false, func(e *env, id string) {
			if err := e.m.DeleteRegistration(e.ctx, id, ""); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"enrollment disabled", false, func(e *env, id string) {
			en := e.getEnrollment(id)
			en.ProvisioningStatus = enrollment.StatusDisabled
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, en, store.Condition{}); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"moved to another site", false, func(e *env, id string) {
			en := e.getEnrollment(id)
			en.Site = "ship"
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, en, store.Condition{}); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"iotEdge removed", false, func(e *env, id string) {
			en := e.getEnrollment(id)
			en.Capabilities = nil
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, en, store.Condition{}); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"enrollment deleted", false, func(e *env, id string) {
			if err := e.m.IndividualEnrollments().Delete(e.ctx, id, ""); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"site deleted", false, func(e *env, id string) {
			if err := e.svc.DeleteSite(e.ctx, "plant", ""); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"group disabled", true, func(e *env, id string) {
			g, _ := e.m.EnrollmentGroups().Get(e.ctx, "edge")
			g.ProvisioningStatus = enrollment.StatusDisabled
			if _, err := e.m.EnrollmentGroups().Put(e.ctx, g, store.Condition{}); err != nil {
				e.t.Fatal(err)
			}
		}, true},
		{"another enrollment changed", false, func(e *env, id string) {
			e.putEnrollment("dev-1", "plant")
			en := e.getEnrollment(id)
			en.ReprovisionPolicy = &enrollment.ReprovisionPolicy{UpdateHubAssignment: true}
			if _, err := e.m.IndividualEnrollments().Put(e.ctx, en, store.Condition{}); err != nil {
				e.t.Fatal(err)
			}
		}, false},
	} {
		for _, be := range backends {
			t.Run(tc.name+"/"+be.name, func(t *testing.T) {
				e := newEnv(t, be.open(t))
				e.putSite("plant")
				e.putSite("ship")
				var gw *Gateway
				if tc.group {
					e.putGroup("edge", "plant")
					g, _ := e.st.Groups.Get(context.Background(), "edge")
					g.Capabilities = &enrollment.DeviceCapabilities{IoTEdge: true}
					if _, err := e.st.Groups.Put(context.Background(), g, store.Condition{}); err != nil {
						t.Fatal(err)
					}
					cert := e.register("gw-1", "edge", mustKey(t))
					var err error
					if gw, err = e.svc.Authenticate(context.Background(), cert); err != nil {
						t.Fatal(err)
					}
				} else {
					gw, _ = e.gateway("gw-1", "plant")
				}
				sub, subKey := e.siteCA(gw)
				serial := fmt.Sprintf("%032x", sub.SerialNumber)
				tc.change(e, "gw-1")
				revoked, err := e.rev.IsRevoked(context.Background(), serial)
				if tc.revoked && (err != nil || !revoked) {
					t.Fatalf("site CA revoked=%v, %v", revoked, err)
				}
				if !tc.revoked && err == nil {
					t.Fatalf("site CA stored among certificates (revoked=%v)", revoked)
				}
				if !tc.revoked {
					return
				}
				// On the CRL's list.
				var listed bool
				if err := e.rev.Revoked(context.Background(), func(c *enrollment.Certificate) error {
					listed = listed || c.Serial == serial
					return nil
				}); err != nil || !listed {
					t.Fatalf("site CA not among the revoked: %v", err)
				}
				// A leaf issued after the withdrawal is refused at ingest
				// (when the gateway can still authenticate at all).
				if tc.name == "another enrollment changed" {
					return
				}
				time.Sleep(10 * time.Millisecond)
				e.putEnrollment("dev-late", "plant")
				l := leaf(t, sub, subKey, "zdps-site-plant", "dev-late")
				in, err := decodeRecord(ptr(pushed("dev-late", "e", time.Now(), l)))
				if err != nil {
					t.Fatal(err)
				}
				in.Cert.NotBefore = time.Now() // as issued now
				err = e.b.View(context.Background(), func(tx store.Tx) error {
					_, err := e.svc.verifyLeaf(context.Background(), tx, gw, in)
					return err
				})
				if err == nil {
					t.Fatal("a leaf issued after the withdrawal verified")
				}
			})
		}
	}
}

func ptr(r dps.GatewayRecord) *dps.GatewayRecord { return &r }
