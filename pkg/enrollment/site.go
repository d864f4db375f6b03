package enrollment

import (
	"slices"
	"strconv"
	"time"

	"github.com/zdps/zdps/pkg/enrollment/check"
)

// Site is a zdps extension: a named place (a factory, a ship) whose edge
// gateways provision its devices while the link to this zdps is down.
// Enrollments and groups join a site through their Spec.Site; a gateway
// is an enrolled device whose enrollment has capabilities.iotEdge and
// names the site.
type Site struct {
	Versioned
	// Name is 1 to 63 lower-case letters, digits and inner hyphens (it
	// becomes part of the delegated CA's name constraint,
	// O=zdps-site-<name>).
	Name string `json:"name"`
	// Hubs are the host names of the hubs the site's devices are assigned
	// to; the gateway allocates among them.
	Hubs []string `json:"hubs"`
	// Gateways is read-only: what each gateway of the site last reported,
	// filled in by the service API's answers and ignored on write.
	Gateways []SiteGateway `json:"gateways,omitempty"`
}

// SiteGateway is one gateway's last status report.
type SiteGateway struct {
	RegistrationID string `json:"registrationId"`
	// LastSync is when the gateway last completed a sync with this zdps.
	LastSync *time.Time `json:"lastSync,omitempty"`
	// Backlog is how many records and audit events wait at the gateway.
	Backlog int `json:"backlog"`
	// CANotAfter and CASerial are of the gateway's delegated CA.
	CANotAfter *time.Time `json:"caNotAfter,omitempty"`
	CASerial   string     `json:"caSerial,omitempty"`
	// ReportedAt is when this zdps received the report.
	ReportedAt *time.Time `json:"reportedAt,omitempty"`
}

// StoreKey is the site's name in lower case.
func (s *Site) StoreKey() string { return Key(s.Name) }

// MaxSiteHubs bounds the hubs of one site.
const MaxSiteHubs = 64

// MaxSiteNameLength is the longest site name.
const MaxSiteNameLength = check.MaxSiteNameLength

// ValidateSiteName checks a site name: 1 to 63 lower-case ASCII letters,
// digits and hyphens, not starting or ending with a hyphen.
func ValidateSiteName(name string) error { return check.SiteName("name", name) }

// Validate checks a site and normalises its hub list (sorted, no
// duplicates).
func (s *Site) Validate() error {
	if err := check.SiteName("name", s.Name); err != nil {
		return err
	}
	if len(s.Hubs) > MaxSiteHubs {
		return check.Invalid("hubs", "at most %d hubs, not %d", MaxSiteHubs, len(s.Hubs))
	}
	for i, h := range s.Hubs {
		if err := check.HostName("hubs["+strconv.Itoa(i)+"]", h); err != nil {
			return err
		}
	}
	slices.Sort(s.Hubs)
	s.Hubs = slices.Compact(s.Hubs)
	if s.Hubs == nil {
		s.Hubs = []string{}
	}
	return nil
}

// DecodeSite decodes and validates a site from a request body; the
// read-only fields (etag, timestamps, gateways) are dropped.
func DecodeSite(b []byte) (*Site, error) {
	return decode(b, func(s *Site) { s.Versioned, s.Gateways = Versioned{}, nil })
}
