package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/corral-run/corral/client/wire"
)

// maxAnswerBatch bounds how many answers the reader gathers before it
// hands them to their Emits.
const maxAnswerBatch = 512

// answer is a parsed ack or error reply.
type answer struct {
	id    uint64 // 0 when the id is not one of ours
	rawID string // for logs when id is 0
	err   *NodeError
	// p is the event answered, set when its refusal had nobody waiting.
	p *pendingEmit
	// matched is set when the answer was for a pending event.
	matched bool
}

// readLoop reads the node's lines: answers go to their Emits, anything else
// to the OnMessage handler. Answers are handed over in batches, one lock
// per batch, whenever the reader has caught up with the socket.
func (c *Client) readLoop(s *session) {
	defer close(s.readerDone)
	r := bufio.NewReaderSize(s.conn, 64<<10)
	var long []byte
	batch := make([]answer, 0, 64)
	for {
		line, err := wire.ReadLine(r, c.opts.maxLineBytes, &long)
		if err != nil && !errors.Is(err, wire.ErrLineTooLong) {
			c.answer(batch)
			if errors.Is(err, io.EOF) {
				err = errors.New("the node closed the connection")
			} else {
				err = fmt.Errorf("cannot read from the node: %w", err)
			}
			s.fail(err)
			return
		}
		switch {
		case err != nil:
			c.log.Warn("skipped a line from the node longer than the limit", "process", c.cfg.ProcessID, "limit", c.opts.maxLineBytes)
		case len(bytes.TrimSpace(line)) == 0:
		default:
			if a, ok := parseAnswer(line); ok {
				batch = append(batch, a)
			} else if json.Valid(line) {
				c.inbox.push(bytes.Clone(line))
			} else {
				c.log.Warn("skipped a line from the node that is not JSON", "process", c.cfg.ProcessID, "line", clip(line))
			}
		}
		if len(batch) > 0 && (r.Buffered() == 0 || len(batch) >= maxAnswerBatch) {
			c.answer(batch)
			batch = batch[:0]
		}
	}
}

// answer hands a batch of answers to the Emits waiting for them; refusals
// nobody waits for are recorded for Flush, under the same lock that takes
// the events out of the buffer, so a Flush that sees them gone sees the
// refusals too.
func (c *Client) answer(batch []answer) {
	if len(batch) == 0 {
		return
	}
	c.mu.Lock()
	for i := range batch {
		a := &batch[i]
		if a.id == 0 || !c.opts.acks {
			continue
		}
		p := c.pending.take(a.id)
		if p == nil {
			continue
		}
		a.matched = true
		var err error
		if a.err != nil {
			err = a.err
		}
		if !p.deliver(err) && a.err != nil {
			c.refusedLocked(a.err)
			a.p = p
		}
	}
	c.notifyLocked()
	c.mu.Unlock()
	for i := range batch {
		a := &batch[i]
		if a.err != nil {
			if a.p != nil {
				c.log.Warn("the node refused an event", "process", c.cfg.ProcessID, "event", a.p.event, "code", a.err.Code, "err", a.err.Message)
			} else if !a.matched {
				// An answer to no pending event: a line the node could not
				// read an id from, or a duplicate after a resend.
				c.log.Warn("the node refused a line", "process", c.cfg.ProcessID, "id", a.rawID, "code", a.err.Code, "err", a.err.Message)
			}
		}
		*a = answer{}
	}
}

// ackPrefix starts every ack the node writes (wire.AppendAck).
var ackPrefix = []byte(`{"type":"ack","id":`)

// parseAnswer reports whether line is an answer — an object whose "type"
// is "ack" or "error" and that has an "id" — and parses it.
func parseAnswer(line []byte) (answer, bool) {
	// Fast path: the node's own ack encoding with a numeric id.
	if len(line) > len(ackPrefix) && bytes.HasPrefix(line, ackPrefix) && line[len(line)-1] == '}' {
		if id, err := strconv.ParseUint(string(line[len(ackPrefix):len(line)-1]), 10, 64); err == nil {
			return answer{id: id}, true
		}
	}
	var probe struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id"`
		Code    string          `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(line, &probe) != nil || len(probe.ID) == 0 {
		return answer{}, false
	}
	var a answer
	switch probe.Type {
	case wire.TypeAck:
	case wire.TypeError:
		a.err = &NodeError{Code: probe.Code, Message: probe.Message}
	default:
		return answer{}, false
	}
	a.rawID = string(probe.ID)
	if id, err := strconv.ParseUint(wire.IDText(probe.ID), 10, 64); err == nil {
		a.id = id
	}
	return a, true
}
