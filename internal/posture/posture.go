package posture

import (
	"context"
	"crypto/x509"
	"fmt"
	"github.com/zdps/zdps/pkg/dps"
	"sort"
	"strings"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Severities, heaviest first, and what each costs the score.
const (
	SeverityHigh   = "high"
	SeverityMedium = "medium"
	SeverityLow    = "low"
)

var weight = map[string]int{SeverityHigh: 15, SeverityMedium: 6, SeverityLow: 2}

// Finding is one thing to fix.
type Finding = dps.PostureFinding

// Report is the posture at a time.
type Report = dps.PostureReport

// Source is the store as posture reads it: each call walks one collection
// and calls fn per item, stopping at fn's error.
type Source interface {
	Enrollments(ctx context.Context, fn func(*enrollment.IndividualEnrollment) error) error
	Groups(ctx context.Context, fn func(*enrollment.EnrollmentGroup) error) error
	Registrations(ctx context.Context, fn func(*enrollment.Registration) error) error
	CACertificates(ctx context.Context, fn func(*enrollment.CACertificate) error) error
	Hubs(ctx context.Context, fn func(*enrollment.Hub) error) error
	Certificates(ctx context.Context, fn func(*enrollment.Certificate) error) error
}

// Settings are the instance's settings that weaken security when off.
type Settings struct {
	RevokeOnDisable bool
	// WebhookSecret: custom allocation webhooks are signed.
	WebhookSecret bool
	// MetricsOpen: /metrics is served without authentication.
	MetricsOpen bool
	// KEKBesideStore: the key-encryption key lies beside the store (the
	// default file), so a copy of the data directory opens every secret.
	KEKBesideStore bool
}

// Thresholds of the findings; zero takes the default.
type Thresholds struct {
	// ExpiryDays: certificates expiring within it are findings (30).
	ExpiryDays int
	// KeyAgeDays: symmetric keys older than it are findings (365).
	KeyAgeDays int
	// UnusedDays: enrollments older than it that never registered (30).
	UnusedDays int
}

// Options configure Compute.
type Options struct {
	Now func() time.Time
	Thresholds
	// CA is the chain zdps issues from, leaf (intermediate) first.
	CA []*x509.Certificate
	Settings
}

// tally collects one finding's count and first example.
type tally struct {
	f Finding
}

func (t *tally) add(example string) {
	if t.f.Count == 0 || example < t.f.Example {
		t.f.Example = example
	}
	t.f.Count++
}

// Compute builds the report.
func Compute(ctx context.Context, src Source, o Options) (*Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	days := func(n, def int) time.Duration {
		if n <= 0 {
			n = def
		}
		return time.Duration(n) * 24 * time.Hour
	}
	now := o.Now().UTC()
	expiry, keyAge, unused := days(o.ExpiryDays, 30), days(o.KeyAgeDays, 365), days(o.UnusedDays, 30)
	expDays := int(expiry / (24 * time.Hour))
	ts := map[string]*tally{}
	t := func(id, sev, title, remedy string) *tally {
		if ts[id] == nil {
			ts[id] = &tally{f: Finding{ID: id, Severity: sev, Title: title, Remedy: remedy}}
		}
		return ts[id]
	}

	for i, c := range o.CA {
		name := "intermediate"
		if i == len(o.CA)-1 && len(o.CA) > 1 {
			name = "root"
		}
		if c.NotAfter.Before(now.Add(expiry)) {
			t("ca-expiring", SeverityHigh, fmt.Sprintf("CA certificates expire within %d days", expDays),
				"zdps ca show; issue a new intermediate before it expires (devices renew under it)").add(name + " " + c.Subject.CommonName + " expires " + c.NotAfter.UTC().Format(time.DateOnly))
		}
	}
	if !o.RevokeOnDisable {
		t("revoke-on-disable-off", SeverityHigh, "certificates stay valid when their enrollment is deleted or disabled", "zdps serve --revoke-on-disable=true").add("--revoke-on-disable=false")
	}
	if o.MetricsOpen {
		t("metrics-open", SeverityMedium, "metrics are served without authentication", "zdps serve --metrics-listen 127.0.0.1:9090 (a private listener), or a scrape token").add("/metrics")
	}
	if o.KEKBesideStore {
		t("kek-beside-store", SeverityMedium, "the key-encryption key lies in the data directory beside the store", "zdps serve --kek-file FILE on another volume").add("data directory")
	}

	hubs := map[string]string{}
	if err := src.Hubs(ctx, func(h *enrollment.Hub) error { hubs[strings.ToLower(h.Name)] = h.Status; return nil }); err != nil {
		return nil, err
	}
	registered := map[string]bool{}
	diceGroups, diceEnrollments := map[string]bool{}, map[string]bool{}
	if err := src.Registrations(ctx, func(r *enrollment.Registration) error {
		id := strings.ToLower(r.RegistrationID)
		registered[id] = true
		if r.DICE != nil {
			if r.EnrollmentGroupID != "" {
				diceGroups[strings.ToLower(r.EnrollmentGroupID)] = true
			} else {
				diceEnrollments[id] = true
			}
		}
		switch hubs[strings.ToLower(r.AssignedHub)] {
		case "draining", "unhealthy":
			t("devices-on-bad-hubs", SeverityMedium, "devices are assigned to draining or unhealthy hubs",
				"re-register them (they move to a healthy hub), or zdps hub update HUB --status active").add(r.RegistrationID + " on " + r.AssignedHub)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	keyOld := func(v *enrollment.Versioned) bool {
		at := v.CreatedDateTimeUTC
		if v.LastUpdatedDateTimeUTC != nil {
			at = v.LastUpdatedDateTimeUTC
		}
		return at != nil && at.Before(now.Add(-keyAge))
	}
	if err := src.Enrollments(ctx, func(e *enrollment.IndividualEnrollment) error {
		spec(t, &e.Spec, "enrollment "+e.RegistrationID, diceEnrollments[strings.ToLower(e.RegistrationID)], webhookUnsigned(&e.Spec, o.WebhookSecret))
		if a := e.Attestation; a != nil && a.Type == enrollment.AttestationTPM && a.TPM != nil && !a.TPM.RequireEndorsementKeyCertificate {
			t("tpm-without-ek-check", SeverityMedium, "TPM enrollments accept a device without checking its EK certificate",
				"zdps enrollment create ID --attestation tpm --require-ek-certificate (with zdps serve --tpm-ek-roots)").add(e.RegistrationID)
		}
		if a := e.Attestation; a != nil && a.Type == enrollment.AttestationSymmetricKey && keyOld(&e.Versioned) {
			t("old-keys", SeverityLow, fmt.Sprintf("symmetric keys unchanged for more than %d days", int(keyAge/(24*time.Hour))),
				"zdps enrollment create ID --attestation symmetricKey (new keys), then update the device").add("enrollment " + e.RegistrationID)
		}
		if !registered[strings.ToLower(e.RegistrationID)] && e.CreatedDateTimeUTC != nil && e.CreatedDateTimeUTC.Before(now.Add(-unused)) {
			t("unused-enrollments", SeverityLow, fmt.Sprintf("individual enrollments never used in %d days", int(unused/(24*time.Hour))),
				"zdps enrollment delete ID (or disable it)").add(e.RegistrationID)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := src.Groups(ctx, func(g *enrollment.EnrollmentGroup) error {
		spec(t, &g.Spec, "group "+g.EnrollmentGroupID, diceGroups[strings.ToLower(g.EnrollmentGroupID)], webhookUnsigned(&g.Spec, o.WebhookSecret))
		if a := g.Attestation; a != nil && a.Type == enrollment.AttestationSymmetricKey {
			t("symmetric-key-groups", SeverityMedium, "groups use a symmetric group key: whoever holds it can derive every device's key",
				"enroll the devices with X.509 (zdps group create ID --attestation x509 --ca-ref CA) or TPM").add(g.EnrollmentGroupID)
			if keyOld(&g.Versioned) {
				t("old-keys", SeverityLow, fmt.Sprintf("symmetric keys unchanged for more than %d days", int(keyAge/(24*time.Hour))),
					"zdps enrollment create ID --attestation symmetricKey (new keys), then update the device").add("group " + g.EnrollmentGroupID)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := src.CACertificates(ctx, func(c *enrollment.CACertificate) error {
		if !c.IsVerified {
			t("ca-unverified", SeverityMedium, "CA certificates added without proof of possession",
				"zdps ca verification-code NAME, then zdps ca verify NAME --cert PROOF").add(c.Name)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := src.Certificates(ctx, func(c *enrollment.Certificate) error {
		if c.RevokedAt == nil && c.NotAfter.After(now) && c.NotAfter.Before(now.Add(expiry)) {
			t("certificates-expiring", SeverityLow, fmt.Sprintf("operational certificates expire within %d days", expDays),
				"the devices renew over mTLS (zdps device register --renew), or re-register").add(c.RegistrationID)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	rep := &Report{Time: now, Score: 100, Findings: []Finding{}}
	for _, v := range ts {
		rep.Findings = append(rep.Findings, v.f)
		rep.Score -= weight[v.f.Severity]
	}
	rep.Score = max(rep.Score, 0)
	sort.Slice(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if weight[a.Severity] != weight[b.Severity] {
			return weight[a.Severity] > weight[b.Severity]
		}
		return a.ID < b.ID
	})
	return rep, nil
}

func webhookUnsigned(s *enrollment.Spec, secret bool) bool {
	return !secret && s.CustomAllocationDefinition != nil && s.CustomAllocationDefinition.WebhookURL != ""
}

// spec checks what enrollments and groups share.
func spec(t func(id, sev, title, remedy string) *tally, s *enrollment.Spec, name string, dice, unsignedWebhook bool) {
	if dice && s.FirmwarePolicy == nil {
		t("dice-without-firmware-policy", SeverityHigh, "DICE devices register with no firmware policy: any firmware, rolled back included, is accepted",
			"zdps group set-firmware-policy ID (or zdps enrollment set-firmware-policy ID) with the layers' minimum SVN and FWIDs").add(name)
	}
	if unsignedWebhook {
		t("webhook-unsigned", SeverityMedium, "custom allocation webhooks are called without a signature",
			"zdps serve --allocation-webhook-secret-file FILE").add(name)
	}
}
