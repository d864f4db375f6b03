package enrollment

import "time"

// Versioned is the store-maintained part of every document: its ETag and
// timestamps. The store sets it on every write; requests never do.
type Versioned struct {
	ETag                   string     `json:"etag,omitempty"`
	CreatedDateTimeUTC     *time.Time `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC *time.Time `json:"lastUpdatedDateTimeUtc,omitempty"`
}

// Version gives the store access to the embedded fields.
func (v *Versioned) Version() *Versioned { return v }

// StoreKey is the case-insensitive key of the enrollment.
func (e *IndividualEnrollment) StoreKey() string { return Key(e.RegistrationID) }

// StoreKey is the case-insensitive key of the group.
func (g *EnrollmentGroup) StoreKey() string { return Key(g.EnrollmentGroupID) }

// StoreKey is the case-insensitive key of the record.
func (r *Registration) StoreKey() string { return Key(r.RegistrationID) }

// StoreKey is the case-insensitive key of the hub.
func (h *Hub) StoreKey() string { return Key(h.Name) }

// StoreKey is the case-insensitive key of the policy.
func (p *SharedAccessPolicy) StoreKey() string { return Key(p.KeyName) }

// StoreKey of the single Settings document.
func (s *Settings) StoreKey() string { return "instance" }
