// Package gateway holds the end-to-end test of edge gateways (issue 18):
// a central zdps serve and a gateway zdps serve --upstream on 127.0.0.1,
// devices provisioning at the gateway while central is down.
package gateway
