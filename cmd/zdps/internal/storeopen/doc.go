// Package storeopen opens what `zdps serve` and the CA commands that work
// on the store directly (`zdps ca init`, `zdps ca rotate`) share: the store
// named by --store in the data directory, the key-encryption key that seals
// its secrets (a key file or a passphrase whose salt the store keeps), and
// the KMS of the CA's keys. One implementation, so that the commands find
// the very store and key the server uses.
package storeopen
