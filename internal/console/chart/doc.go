// Package chart draws the console dashboard's registrations per minute
// from the audit trail. It keeps per-minute counts up to a sequence
// number (Counter), so a dashboard view reads only the events chained
// since the last one, and draws them as an SVG built from numbers only.
// It exists apart from internal/console because it is arithmetic over
// the trail, with its own bounds and golden test, and no page logic.
package chart
