// Package hubcmd holds the commands about where devices go and who may
// manage the service: `zdps hub` (the linked hubs), `zdps allocation`
// (the instance's default policy and explanations of a device's
// assignment), `zdps registration` (the records of where devices went)
// and `zdps policy` (shared access policies of the service API).
package hubcmd
