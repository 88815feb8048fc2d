// Package gateway is a node's HTTP listener: the cluster's API under
// /api/v1/ (JSON in the shapes of the NATS replies), events as server-sent
// events (SSE), the OpenAPI description, Prometheus metrics, health checks
// for load balancers, and the dashboard (package bus/gateway/dashboard).
//
// It is a cluster client: it drives the cluster through a
// bus/control.Control, usually on the node's own NATS connection, so every
// node's listener shows the whole cluster. It enforces who may do what
// itself, before calling the control client, with the roles of DESIGN.md:
// a viewer may look (GET, events, logs, metrics), an operator may also
// spawn, stop, restart and send. Callers present a bearer token, or the
// session cookie the dashboard's login sets; a gateway without tokens
// treats everyone as an operator, and so must listen on loopback only
// unless told it may not (Config.Insecure).
//
// Every bound a stranger could push is a limit: connections, event
// streams, request bodies, failed sign-ins per address, sessions. Every
// error is JSON, {"error": "...", "code": N}, N being the HTTP status.
//
// It does not supervise anything, publish events or serve NATS: it owns
// no state but its sessions.
package gateway
