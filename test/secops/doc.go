// Package secops holds end-to-end tests of zdps's security operations
// against a real `zdps serve`: a real Prometheus scraping its metrics,
// and the SIEM export surviving a receiver outage and a kill -9.
package secops
