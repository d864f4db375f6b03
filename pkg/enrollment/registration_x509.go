package enrollment

// RegistrationX509 records the certificates of an X.509 registration, as
// DPS answers them in registrationState.x509: summaries only, never the
// certificates themselves.
type RegistrationX509 struct {
	// CertificateInfo summarises the leaf the device presented.
	CertificateInfo *X509CertificateInfo `json:"certificateInfo,omitempty"`
	// SigningCertificateInfo summarises the certificate the chain was
	// verified to (a group's signing certificate, a registered CA
	// certificate, or zdps's issuing intermediate for a renewal); nil when
	// an individual enrollment lists the leaf itself.
	SigningCertificateInfo *X509CertificateInfo `json:"signingCertificateInfo,omitempty"`
}
