// Package enrollcmd is `zdps enrollment` and `zdps group`: create, get,
// list, delete, keys and set-firmware-policy written once over a kind
// descriptor (names, API calls, where the fields are), plus each kind's
// own commands (enrollment import; group compute-device-key).
//
// Create checks the flags with the server's own validation before any
// call, and creates with a one-item bulk create, which never replaces an
// existing document.
package enrollcmd
