// Package ratelog bounds how many log lines a class of event may write:
// at most Lines per Interval for each key, then, once the interval is
// over, one "suppressed K lines" line for what it held back. It is for
// events anyone on the network can cause (a device sending a truncated
// body), so that a client bug or an attacker cannot fill the log.
//
// Keys are fixed words chosen by the caller (an event kind), never client
// input: each key in use holds a small window until its interval ends.
package ratelog
