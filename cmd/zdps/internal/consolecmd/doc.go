// Package consolecmd is `zdps console`: what the CLI does for the web
// console (a one-time sign-in link for the policy of the connection
// string it uses).
package consolecmd
