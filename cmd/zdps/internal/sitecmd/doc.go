// Package sitecmd is `zdps site`: the sites of edge gateways on the
// central zdps (create, list, show, status, delete) and the assignment of
// enrollments and groups to them.
package sitecmd
