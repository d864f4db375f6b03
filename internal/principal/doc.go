// Package principal names who makes a management request: a shared access
// policy that signed a SAS token, or a user who signed in through OIDC (a
// console session or a bearer token), with the DPS rights they hold.
//
// Every way in (internal/api's SAS check, the OIDC bearer check, the
// console's session) produces one Principal; authorization asks only
// HasRight, and the audit trail names Actor. Standard library only.
package principal
