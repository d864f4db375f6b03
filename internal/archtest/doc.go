// Package archtest enforces the repository's structural rules with tests
// and holds no code of its own:
//
//   - the import rules of docs/architecture.md ("Import rules"), read from
//     the real dependency graph (`go list -deps -json`): archtest_test.go
//     holds the rules and the list of today's known exceptions, each with
//     the issue that removes it. Rules are checked on the transitive
//     dependencies of non-test code, so a forbidden package cannot be
//     reached through an intermediate one; test files may import anything.
//     A failure names the rule, the offending pair and the import chain.
//   - the repository explains itself (doclinks_test.go): every Markdown
//     file a file names exists in the repository, and every reference to a
//     section of docs/protocol.md or docs/architecture.md names a heading
//     that exists.
package archtest
