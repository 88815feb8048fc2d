package client

import (
	"errors"
	"fmt"
)

// Errors returned by the client. Test with errors.Is.
var (
	// ErrNotConfigured: the settings needed to reach the node are missing
	// (the process was not spawned by corrald, or Config lacks a field).
	ErrNotConfigured = errors.New("missing connection settings")
	// ErrNotConnected: Emit was called before Connect.
	ErrNotConnected = errors.New("client is not connected (call Connect first)")
	// ErrClosed: the client was disconnected with Disconnect.
	ErrClosed = errors.New("client is disconnected")
	// ErrGaveUp: the connection dropped and every reconnect attempt failed.
	// The client stays disconnected for good.
	ErrGaveUp = errors.New("gave up reconnecting")
	// ErrRejected matches every [*NodeError].
	ErrRejected = errors.New("rejected by the node")
	// ErrInvalidEvent: the event name or data break the protocol's rules,
	// so the client did not send it.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrLineTooLong: the encoded event is longer than the line limit.
	ErrLineTooLong = errors.New("line too long")
	// ErrBufferFull: the client holds as many events as it may (see
	// WithBuffer) and the caller's ctx ended before there was room. The
	// event was not taken. Errors wrapping it also wrap ctx's error.
	ErrBufferFull = errors.New("buffer full")
)

// NodeError is the node's refusal of an event, from an error reply.
type NodeError struct {
	// Code is one of the wire.Code… constants, such as wire.CodeSchemaInvalid.
	Code string
	// Message is the node's explanation.
	Message string
}

func (e *NodeError) Error() string {
	return "rejected by the node (" + e.Code + "): " + e.Message
}

// Is reports whether target is [ErrRejected].
func (e *NodeError) Is(target error) bool { return target == ErrRejected }

// errorf returns an error whose text is the formatted message alone and
// which matches kind with errors.Is (and what the message wraps with %w):
// "cannot emit "e": 10 events wait for the node" rather than a sentence
// with the kind's word in its middle.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }
