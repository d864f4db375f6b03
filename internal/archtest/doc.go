// Package archtest enforces zdps's import rules (docs/architecture.md,
// "Import rules") with a test that reads the real dependency graph from
// `go list -deps -json ./...`. It holds no code: the rules, and the list
// of today's known exceptions with the issue that removes each, are in
// archtest_test.go.
//
// Rules are checked on transitive dependencies of non-test code, so a
// forbidden package cannot be reached through an intermediate one; test
// files may import anything. A failure names the rule, the offending pair
// and the import chain that connects them.
package archtest
