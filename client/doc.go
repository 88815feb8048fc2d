// Package client is the library a child process imports to talk to the
// Corral node that spawned it, over the node's per-process socket.
//
// A child connects with [Connect], which reads the settings the node puts in
// its environment (DONKEYLABS_PROCESS_ID, DONKEYLABS_SOCKET_PATH or
// DONKEYLABS_TCP_PORT, DONKEYLABS_METADATA), then emits events:
//
//	c, err := client.Connect(ctx)
//	if err != nil { ... }
//	defer c.Disconnect()
//	err = c.Emit(ctx, "progress", map[string]any{"percent": 50})
//
// Once connected, the client sends heartbeats (and, when enabled, its own
// resource figures) on its own, reconnects when the connection drops
// without losing events, and hands lines the node sends to the process to
// the [Client.OnMessage] handler.
//
// Delivery. With acks on (the default) every event carries an increasing
// numeric id; [Client.Emit] returns once the node has accepted the event
// (nil) or refused it (a [*NodeError]). [Client.EmitAsync] returns as soon
// as the client holds the event, and [Client.Flush] waits until every
// event taken before it was answered. The client holds each event until the
// node answers it: an event whose connection drops before its answer is
// resent with the same id after the reconnect, so the node, which makes
// its Nats-Msg-Id of the process id and that id, stores it once. With acks
// off ([WithAcks](false)) Emit returns as soon as the event is queued: the
// fastest mode, at most once — events taken while the node is away are
// still sent after the reconnect, but lines the kernel had already taken
// when a connection dropped may be lost.
//
// Reconnects. When the connection drops, the client dials again every
// reconnect interval (2 s) up to the maximum attempts (30), as the original
// TypeScript client does. Meanwhile Emit and EmitAsync do not wait for the
// node: events join a bounded buffer ([WithBuffer]; when it is full they
// wait for room until their ctx ends, and never drop an event), and after
// the reconnect the client sends "connected", then the events the last
// connection left unanswered, in id order, then the ones taken meanwhile,
// in order. Once the attempts are exhausted every event still held fails
// with [ErrGaveUp], which Emit, Flush, [Client.Err] and [Client.Done]
// report.
//
// It owns the child side of the wire protocol (DESIGN.md, "The child wire
// protocol"): framing, the envelope every line carries, acks, reconnects,
// heartbeats and stats sampling. It does not own the message types and
// constants, which live in package [github.com/corral-run/corral/client/wire]
// and are shared with the node, nor anything about NATS: a child needs only
// the socket. It imports no package of Corral's other than wire.
package client
