package enrollment

import (
	"strconv"
	"strings"

	"github.com/zdps/zdps/pkg/enrollment/check"
)

// Bulk operation modes (docs/protocol.md#bulk-operations), exactly as DPS spells them.
const (
	BulkCreate            = "create"
	BulkUpdate            = "update"
	BulkUpdateIfMatchETag = "updateIfMatchETag"
	BulkDelete            = "delete"
)

// BulkEnrollmentOperation is the body of POST /enrollments.
type BulkEnrollmentOperation struct {
	Mode        string                  `json:"mode"`
	Enrollments []*IndividualEnrollment `json:"enrollments"`
}

// BulkEnrollmentGroupOperation is the body of POST /enrollmentGroups.
type BulkEnrollmentGroupOperation struct {
	Mode             string             `json:"mode"`
	EnrollmentGroups []*EnrollmentGroup `json:"enrollmentGroups"`
}

// BulkOperationResult answers a bulk enrollment call (DPS
// BulkEnrollmentOperationResult).
type BulkOperationResult struct {
	IsSuccessful bool                 `json:"isSuccessful"`
	Errors       []BulkOperationError `json:"errors"`
}

// BulkOperationError is one failed item (DPS
// DeviceRegistrationOperationError).
type BulkOperationError struct {
	RegistrationID string `json:"registrationId"`
	ErrorCode      int    `json:"errorCode"`
	ErrorStatus    string `json:"errorStatus"`
}

// BulkEnrollmentGroupOperationResult answers a bulk group call.
type BulkEnrollmentGroupOperationResult struct {
	IsSuccessful bool                                `json:"isSuccessful"`
	Errors       []BulkEnrollmentGroupOperationError `json:"errors"`
}

// BulkEnrollmentGroupOperationError is one failed group.
type BulkEnrollmentGroupOperationError struct {
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	ErrorCode         int    `json:"errorCode"`
	ErrorStatus       string `json:"errorStatus"`
}

// NormalizeBulkMode returns the canonical spelling of a bulk mode given in
// any case, and whether it is one.
func NormalizeBulkMode(m string) (string, bool) {
	for _, c := range []string{BulkCreate, BulkUpdate, BulkUpdateIfMatchETag, BulkDelete} {
		if strings.EqualFold(m, c) {
			return c, true
		}
	}
	return "", false
}

func checkBulkMode(m *string) error {
	if *m == "" {
		return check.Invalid("mode", "is required (create, update, updateIfMatchETag or delete)")
	}
	c, ok := NormalizeBulkMode(*m)
	if !ok {
		return check.Invalid("mode", "%q is not a bulk mode (use create, update, updateIfMatchETag or delete)", *m)
	}
	*m = c
	return nil
}

// DecodeBulkEnrollments decodes the body of a bulk enrollment call. The
// structure is strict (unknown fields, a missing or unknown mode, an empty
// list or a null item are errors) but the items are NOT validated: the API
// validates each one and reports per-item errors, as DPS does. Each item
// keeps its etag (updateIfMatchETag compares it); its timestamps and
// registrationState are cleared.
func DecodeBulkEnrollments(b []byte) (*BulkEnrollmentOperation, error) {
	return decodeBulk(b, func(op *BulkEnrollmentOperation) (*string, []*IndividualEnrollment) { return &op.Mode, op.Enrollments },
		"enrollments", "enrollment", func(e *IndividualEnrollment) {
			e.Versioned = Versioned{ETag: e.ETag}
			e.RegistrationState = nil
			e.Spec.normalize()
		})
}

// DecodeBulkEnrollmentGroups is DecodeBulkEnrollments for groups.
func DecodeBulkEnrollmentGroups(b []byte) (*BulkEnrollmentGroupOperation, error) {
	return decodeBulk(b, func(op *BulkEnrollmentGroupOperation) (*string, []*EnrollmentGroup) {
		return &op.Mode, op.EnrollmentGroups
	},
		"enrollmentGroups", "enrollment group", func(g *EnrollmentGroup) {
			g.Versioned = Versioned{ETag: g.ETag}
			g.Spec.normalize()
		})
}

// decodeBulk is both: parts points at the operation's mode and items (in
// the JSON field list, each a noun), and clean clears an item's read-only
// fields.
func decodeBulk[O, T any](b []byte, parts func(*O) (*string, []*T), list, noun string, clean func(*T)) (*O, error) {
	var op O
	if err := check.Decode(b, &op); err != nil {
		return nil, err
	}
	mode, items := parts(&op)
	if err := checkBulkMode(mode); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, check.Invalid(list, "at least one %s is required", noun)
	}
	for i, it := range items {
		if it == nil {
			return nil, check.Invalid(list+"["+strconv.Itoa(i)+"]", "must be an object, not null")
		}
		clean(it)
	}
	return &op, nil
}
