// Package clienttest holds end-to-end tests of package
// [github.com/corral-run/corral/client] against a real node
// ([github.com/corral-run/corral/node]): the test binary runs a supervisor
// and re-executes itself as the managed child, which talks to the node
// with the client library. It has no code of its own; the unit tests of
// the client, against a fake node, are in the client package.
package clienttest
