// Package cmdtest runs zdps commands in-process for the command packages'
// tests: an empty environment, no terminal, captured output.
package cmdtest
