// Package interop holds the interoperability tests: unmodified official
// Azure IoT device SDKs (Node.js, from npm, pinned in interop/node) register
// against a real `zdps serve` process over TLS on 127.0.0.1. `make test`
// installs the npm packages first (scripts/test-setup.sh).
package interop
