// Package catalog lists the JSON Schema of every message Corral sends or
// answers: the payloads on process.>, the control plane's requests and
// replies, the node registry's records, and the child socket protocol.
// Each is generated (package schema/schemagen) from the Go type the code
// marshals, so it cannot drift from what is sent. corralctl's schema
// command prints them; tests validate real messages against them.
package catalog
