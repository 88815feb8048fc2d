// Package e2e holds end-to-end tests of the built programs: TestMain builds
// corrald, corralctl and the example workers into a temporary directory,
// and each test starts a real corrald (embedded NATS on a free port, the
// definitions of config.example.toml), drives it with corralctl and watches
// process.> with a plain NATS client, as an operator would.
//
// The tests check the contract of DESIGN.md from the outside — subjects,
// payloads, headers, exit codes, sockets — so they import no package of
// Corral's. The package has no code outside its tests.
package e2e
