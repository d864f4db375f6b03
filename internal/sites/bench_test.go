package sites

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// BenchmarkSnapshot pulls a site's whole snapshot (2,000 of its
// enrollments among 10,000) in pages of 1,000 on bbolt.
func BenchmarkSnapshot(b *testing.B) {
	be := openBoltB(b)
	e := newEnv(b, be)
	e.putSite("plant")
	gw, _ := e.gateway("gw-1", "plant")
	var batch []*enrollment.IndividualEnrollment
	for i := range 10_000 {
		site := ""
		if i%5 == 0 {
			site = "plant"
		}
		batch = append(batch, &enrollment.IndividualEnrollment{RegistrationID: fmt.Sprintf("dev-%05d", i), Spec: enrollment.Spec{
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
				SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key(1), SecondaryKey: key(2)}}, Site: site}})
		if len(batch) == 100 {
			e.m.IndividualEnrollments().Bulk(e.ctx, "create", batch)
			batch = nil
		}
	}
	b.ResetTimer()
	for b.Loop() {
		n, cur := 0, ""
		for {
			p, err := e.svc.Pull(context.Background(), gw, cur, 1000)
			if err != nil {
				b.Fatal(err)
			}
			n += len(p.Changes)
			if cur = p.Cursor; !p.More {
				break
			}
		}
		if n != 2002 {
			b.Fatalf("%d changes", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/2002, "µs/change")
}

// BenchmarkEnrollmentWrite is one enrollment update through the audited
// store with and without the feed wrapper (a site's enrollment: one feed
// entry per write).
func BenchmarkEnrollmentWrite(b *testing.B) {
	for _, fed := range []bool{false, true} {
		b.Run(fmt.Sprintf("feed=%v", fed), func(b *testing.B) {
			be := openBoltB(b)
			e := newEnv(b, be)
			if !fed {
				e.audited = store.New(audit.Changes(be, e.log), nil)
			}
			st := e.audited
			en := &enrollment.IndividualEnrollment{RegistrationID: "dev-1", Spec: enrollment.Spec{
				Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
					SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key(1), SecondaryKey: key(2)}}, Site: "plant"}}
			for b.Loop() {
				if _, err := st.Enrollments.Put(e.ctx, en, store.Condition{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIngest pushes records of 100 with certificates.
func BenchmarkIngest(b *testing.B) {
	be := openBoltB(b)
	e := newEnv(b, be)
	e.putSite("plant")
	gw, _ := e.gateway("gw-1", "plant")
	sub, subKey := e.siteCA(gw)
	g := &enrollment.EnrollmentGroup{EnrollmentGroupID: "line", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey,
		SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: key(3), SecondaryKey: key(4)}}, Site: "plant"}}
	if _, err := e.m.EnrollmentGroups().Put(e.ctx, g, store.Condition{}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	i := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		recs := make([]dps.GatewayRecord, 100)
		for j := range recs {
			id := fmt.Sprintf("d-%07d", i)
			i++
			recs[j] = pushed(id, "e1", now, leaf(b, sub, subKey, "zdps-site-plant", id))
			recs[j].EnrollmentGroupID = "line"
		}
		b.StartTimer()
		res, err := e.svc.IngestRecords(context.Background(), gw, recs)
		if err != nil || res[99].Status != dps.RecordStored {
			b.Fatalf("%+v %v", res[99], err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/100, "µs/record")
}

func openBoltB(b *testing.B) store.Backend { return openBolt(b, filepath.Join(b.TempDir(), "zdps.db")) }
