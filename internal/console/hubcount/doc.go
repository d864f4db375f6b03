// Package hubcount caches the device count of each linked hub for the
// console's hubs page: counting reads every index entry of a hub, too
// slow for each view of hubs holding many devices. It exists apart from
// internal/console because it is a cache with its own concurrency (a
// stale count is shown while a background run counts again) and no page
// logic.
package hubcount
