package ca

import "time"

// What the tests of package ca_test (the rotations, internal/ca/rotation,
// which imports this package) share with this package's own tests.
var (
	NewTestCA           = newTestCA
	TestKEK             = testKEK
	TestKey             = testKey
	MakeCSR             = makeCSR
	NewMemKMS           = newMemKMS
	KMSType             = kmsType
	IssueTest           = issueTest
	VerifyWithBundle    = verifyWithBundle
	ParsePEMCerts       = parsePEMCerts
	BundleIntermediates = bundleIntermediates
	SiteCSR             = siteCSR
	SignBelow           = signBelow
	OpensslVerify       = opensslVerify
	MustParse           = mustParse
	Delegate            = delegate
)

// MapStorage is the in-memory Storage of the tests.
type MapStorage = mapStorage

// Blob is the stored state; SetBlob replaces it (a store writer's
// tampering).
func (m *mapStorage) Blob() []byte     { return m.state }
func (m *mapStorage) SetBlob(b []byte) { m.state = b }

// NewFakeClock is a test clock standing at t.
func NewFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }
