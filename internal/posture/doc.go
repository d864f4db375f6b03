// Package posture computes zdps's security posture report: findings about
// the CA, the issued certificates, enrollments, groups, hubs and the
// instance's own settings, each with a severity, how many things it
// affects, one example, and the command that remedies it; and a score
// from 100 (nothing found) down, so a security team can track it.
//
// It reads the store through Source (one page at a time, never the whole
// store in memory) and the instance's settings through Settings; it
// writes nothing.
package posture
