// Package cacmd is `zdps ca`: the embedded CA (show, export, its CRL
// checked against it) and the CA certificates of the operator's own PKI
// that X.509 enrollment groups name, registered with proof of possession.
package cacmd
