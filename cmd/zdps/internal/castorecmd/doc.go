// Package castorecmd is the `zdps ca` commands that work on the store
// itself rather than through the service API: `ca init` (create the CA
// before the first start, its keys in a KMS, its root offline), `ca
// rotate` (a new intermediate or root while servers run) and `ca
// sign-intermediate` (the offline root's signature, with no store at
// all). They open the store and its key exactly as `zdps serve` does
// (package storeopen); the binary adds them under the `ca` command of
// package cacmd.
package castorecmd
