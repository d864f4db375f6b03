package device

import "context"

// Renew renews an operational certificate that zdps issued: it registers
// again over mutual TLS presenting cfg.Certificate (the issued chain and
// its key, for example Result.TLSCertificate of the first registration)
// with a new CSR, and returns the result with the renewed chain. The
// service keeps the device ID and the hub; the renewed leaf carries a new
// serial. The old certificate stays valid until it expires or is revoked.
//
// cfg.RegistrationID must be set when the device ID (the certificate's
// common name) differs from the registration ID. Unless cfg.CSR is given,
// a new P-256 key is generated (Result.PrivateKey). Refusals: 401
// (ErrUnauthorized) for an expired, revoked or unknown certificate, or
// one issued to another registration; ErrDisabled for a disabled
// enrollment.
func Renew(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Certificate == nil {
		return nil, invalidConfig("Renew needs Certificate: the operational certificate and its key")
	}
	if len(cfg.SymmetricKey) > 0 || len(cfg.GroupKey) > 0 {
		return nil, invalidConfig("Renew authenticates with Certificate only; SymmetricKey and GroupKey must be empty")
	}
	if len(cfg.CSR) == 0 {
		cfg.GenerateKey = true
	}
	return Register(ctx, cfg)
}
