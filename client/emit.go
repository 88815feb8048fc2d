package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// maxQueuedBytes bounds the output queued for the writer while connected:
// an Emit that would grow it past this waits for the writer to take the
// queue.
const maxQueuedBytes = 1 << 20

// idTailBytes is the longest `,"id":<uint64>}` tail.
const idTailBytes = len(`,"id":}`) + 20

// reservedEvent is the event name the protocol keeps for stats messages.
const reservedEvent = "stats"

// Emit sends the event to the node. data is marshalled with encoding/json
// and must give a JSON object (nil gives {}); it may not use the keys
// "processId" or "name", which the node sets. The event name is 1 to 64 of
// A-Z a-z 0-9 _ -, and not "stats".
//
// With acks on (the default), Emit returns nil once the node has accepted
// the event, or an error wrapping a [*NodeError] (and [ErrRejected]) when it
// refused it. With acks off it returns once the event is queued.
//
// While the connection is down, Emit does not wait for it: the event joins
// the buffer (see [WithBuffer]) and is sent, in order, right after the
// reconnect; with acks on, Emit then waits for the answer as usual. When
// the buffer is full, or 1 MiB of output is queued for the socket, Emit
// waits for room. It fails with [ErrGaveUp] once the reconnect attempts are
// exhausted (and then so does every event still held) and [ErrClosed]
// after Disconnect.
//
// When ctx ends first, Emit returns an error wrapping ctx's error. If the
// event was already taken (the error then says "stays queued"), the client
// keeps it: it is sent, and resent after reconnects with the same id, until
// the node answers, so it is not lost; a refusal that comes after Emit
// returned is logged and reported by the next [Client.Flush]. If it was
// not taken yet (waiting for room: the error also wraps [ErrBufferFull]),
// the event is not sent.
//
// Emit is safe for concurrent use; concurrent Emits are pipelined over the
// one connection and each gets its own answer.
func (c *Client) Emit(ctx context.Context, event string, data any) error {
	head, err := c.encodeEvent(ctx, event, data)
	if err != nil {
		return err
	}
	p, err := c.take(ctx, event, head, true)
	if err != nil || p == nil {
		return err
	}
	select {
	case err := <-p.done:
		return emitResult(event, err)
	case <-ctx.Done():
		if !p.abandon() { // answered meanwhile
			return emitResult(event, <-p.done)
		}
		return fmt.Errorf("cannot emit %q: no answer from the node yet (the event stays queued): %w", event, ctx.Err())
	}
}

// EmitAsync hands the event to the client and returns without waiting for
// the node: nil means the client holds the event and will send it, in
// order, now or after a reconnect, and (with acks on) resend it until the
// node answers. It checks the event as [Client.Emit] does. It waits only
// while the buffer is full (see [WithBuffer]) or 1 MiB of output is queued
// for the socket, until ctx ends: the error then wraps ctx's error and
// [ErrBufferFull], and the event was not taken. It never drops an event it
// took: the node's refusals are logged and reported by the next
// [Client.Flush], and if the client gives up reconnecting, Flush and
// [Client.Err] report [ErrGaveUp]. Call Flush to wait for delivery.
func (c *Client) EmitAsync(ctx context.Context, event string, data any) error {
	head, err := c.encodeEvent(ctx, event, data)
	if err != nil {
		return err
	}
	_, err = c.take(ctx, event, head, false)
	return err
}

// encodeEvent checks an event and encodes its line up to the id.
func (c *Client) encodeEvent(ctx context.Context, event string, data any) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cannot emit %q: %w", event, err)
	}
	if err := checkEventName(event); err != nil {
		return nil, fmt.Errorf("cannot emit %q: %w", event, err)
	}
	payload, err := marshalData(data)
	if err != nil {
		return nil, fmt.Errorf("cannot emit %q: %w", event, err)
	}
	head := make([]byte, 0, len(`{"type":"event","event":"","data":`)+len(event)+len(payload)+len(c.envelope)+13+idTailBytes+1)
	head = c.appendEventHead(head, event, payload)
	if n := len(head) + idTailBytes; n > c.opts.maxLineBytes {
		return nil, errorf(ErrLineTooLong, "cannot emit %q: the line would be about %d bytes, the limit is %d", event, n, c.opts.maxLineBytes)
	}
	return head, nil
}

func emitResult(event string, err error) error {
	if err != nil {
		return fmt.Errorf("cannot emit %q: %w", event, err)
	}
	return nil
}

// appendEventHead appends an event line up to and including its timestamp.
// event is a checked name, so needs no escaping.
func (c *Client) appendEventHead(dst []byte, event string, data []byte) []byte {
	dst = append(dst, `{"type":"event","event":"`...)
	dst = append(dst, event...)
	dst = append(dst, `","data":`...)
	dst = append(dst, data...)
	dst = append(dst, c.envelope...)
	return strconv.AppendInt(dst, time.Now().UnixMilli(), 10)
}

// appendIDTail ends an event line with its id.
func appendIDTail(dst []byte, id uint64) []byte {
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	return append(dst, "}\n"...)
}

// appendControl appends a complete line of type typ; field, when not nil,
// is `,"key":value` inserted after the type.
func (c *Client) appendControl(dst []byte, typ string, field []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, '"')
	dst = append(dst, field...)
	dst = append(dst, c.envelope...)
	dst = strconv.AppendInt(dst, time.Now().UnixMilli(), 10)
	return append(dst, "}\n"...)
}

func checkEventName(event string) error {
	if event == "" || len(event) > 64 {
		return errorf(ErrInvalidEvent, "the name must be 1 to 64 characters of A-Z a-z 0-9 _ -")
	}
	for i := 0; i < len(event); i++ {
		switch b := event[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '-':
		default:
			return errorf(ErrInvalidEvent, "the name must be 1 to 64 characters of A-Z a-z 0-9 _ -")
		}
	}
	if event == reservedEvent {
		return errorf(ErrInvalidEvent, "the name %q is reserved (enable stats with WithStats instead)", event)
	}
	return nil
}

// marshalData encodes an event's data, which must be a JSON object, and
// checks it does not use a key the node sets.
func marshalData(data any) ([]byte, error) {
	if data == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, errorf(ErrInvalidEvent, "cannot marshal the data: %w", err)
	}
	if string(b) == "null" {
		return []byte("{}"), nil
	}
	var reserved string
	if !wire.ObjectKeys(b, func(key []byte) {
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k) == nil {
				key = []byte(k)
			}
		}
		if string(key) == "processId" || string(key) == "name" {
			reserved = string(key)
		}
	}) {
		return nil, errorf(ErrInvalidEvent, "the data must be a JSON object, got %s", clip(b))
	}
	if reserved != "" {
		return nil, errorf(ErrInvalidEvent, "the data may not use the key %q (the node sets it)", reserved)
	}
	return b, nil
}
