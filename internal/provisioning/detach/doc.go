// Package detach lets work outlive the request that started it: Run waits
// for a function a bounded time and, when it takes longer, lets it finish
// in the background and hands its late result to a callback instead of
// the request; a Group counts what still runs, so that a graceful
// shutdown can wait for it. It exists apart from internal/provisioning so
// that the concurrency rules of a registration that continues after its
// request (Config.AssignWait) are in one small place, with no store or
// device around them.
//
// The result goes to exactly one of the two: the request, when the
// function finished before the request stopped waiting, or the callback.
package detach
