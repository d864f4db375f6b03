// Package robustness holds zdps's hostile tests: what an attacker or a
// careless device does to a real server (revocation races, poll and
// register floods, truncated and stalled bodies, kill -9, restore under
// load, the authorization matrix). Each file is one concern; each test
// says what it proves. They run in `make test` with the rest of the suite,
// against real bbolt files, real PostgreSQL and real `zdps serve`
// processes on 127.0.0.1.
//
// Helpers in one file are prefixed with that file's topic so files stay
// independent of each other.
package robustness
