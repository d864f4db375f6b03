// Package upstream is `zdps serve --upstream`: the wiring that makes a
// server an edge gateway of a central zdps. Before the CA opens it makes
// sure the gateway holds its TLS client certificate for central (it
// registers there as the device it is) and a CA central delegated to it;
// while serving it runs the sync of internal/gateway and renews both past
// two thirds of their lives. The sync itself is internal/gateway's; this
// package only holds the flags and the start-up and renewal around it.
package upstream
