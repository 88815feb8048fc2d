package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/client/wire"
	"github.com/corral-run/corral/schema"
)

// rejectError is a line the node refuses, with the wire code to answer.
type rejectError struct {
	code string
	msg  string
}

func (e *rejectError) Error() string { return e.msg }

func reject(code, format string, args ...any) error {
	return &rejectError{code: code, msg: fmt.Sprintf(format, args...)}
}

// handle processes one line from the child and queues its answer when the
// line asked for one. A valid line (well formed, for this connection's
// process) first ends the handshake (conn.go spoken).
func (c *conn) handle(line []byte) {
	var msg wire.Message
	err := c.dec.Decode(line, &msg)
	if err != nil {
		var de *wire.DecodeError
		if errors.As(err, &de) {
			err = &rejectError{code: de.Code, msg: de.Reason}
		}
	} else {
		if msg.ProcessID == c.p.id {
			c.spoken()
		}
		err = c.dispatch(&msg)
	}
	if len(msg.ID) > 0 {
		c.ackAware = true
	}
	switch {
	case errors.Is(err, errDeferred): // answered by the report's Done
	case err == nil:
		if len(msg.ID) > 0 {
			c.out.append(func(b []byte) []byte { return wire.AppendAck(b, msg.ID) })
		}
	default:
		c.refuse(msg.ID, err)
	}
}

// errDeferred says the line's answer comes later, from Report.Done.
var errDeferred = errors.New("answer deferred")

// answerLater is a report's Done for a line with an id: it may run on
// another goroutine, so it only queues the answer and logs.
func (c *conn) answerLater(id json.RawMessage, err error) {
	c.p.sup.lines.answered(err)
	if err == nil {
		c.out.append(func(b []byte) []byte { return wire.AppendAck(b, id) })
		return
	}
	c.p.sup.log.Warn("event not stored", "process", c.p.id, "name", c.p.def.Name, "err", err)
	msg := err.Error()
	c.out.append(func(b []byte) []byte { return wire.AppendError(b, id, wire.CodeUnavailable, msg) })
}

// refuse logs a rejected line and tells the child when it asked for answers.
func (c *conn) refuse(id json.RawMessage, err error) {
	code := wire.CodeInternal
	var re *rejectError
	if errors.As(err, &re) {
		code = re.code
	} else if errors.Is(err, errUnavailable) {
		code = wire.CodeUnavailable
	}
	c.rejected++
	c.p.sup.lines.reject(code)
	// The first rejects of a connection are logged, then one in a thousand,
	// so a child spewing garbage cannot flood the log.
	if c.rejected <= 10 || c.rejected%1000 == 0 {
		c.p.sup.log.Warn("rejected line from child", "process", c.p.id, "name", c.p.def.Name,
			"code", code, "err", err, "rejected", c.rejected)
	}
	if len(id) > 0 || c.ackAware {
		msg := err.Error()
		c.out.append(func(b []byte) []byte { return wire.AppendError(b, id, code, msg) })
	}
}

func (c *conn) tooLong() {
	c.refuse(nil, reject(wire.CodeLineTooLong, "line exceeds the limit of %d bytes", c.p.sup.cfg.MaxLineBytes))
}

var errUnavailable = errors.New("cannot hand the message on")

// dispatch acts on a well-formed message.
func (c *conn) dispatch(msg *wire.Message) error {
	p := c.p
	if msg.ProcessID != p.id {
		return reject(wire.CodeWrongProcess, "processId %q does not match this socket's process %q", msg.ProcessID, p.id)
	}
	s, def := p.sup, p.def
	switch msg.Type {
	case wire.TypeHeartbeat:
		if p.heartbeat(time.Now()) {
			p.persistConnected()
		}
		return c.publish(Report{Kind: KindHeartbeat, ProcessID: p.id, Name: def.Name, Raw: p.ref})
	case wire.TypeEvent:
		return c.relayEvent(msg)
	case wire.TypeStats:
		if msg.Stats == nil {
			return reject(wire.CodeMissingField, `stats message has no "stats" object`)
		}
		err := c.publish(Report{Kind: KindStats, ProcessID: p.id, Name: def.Name,
			Payload: api.StatsReport{ProcessID: p.id, Name: def.Name, Stats: *msg.Stats, Source: "client"}})
		if def.OnStats != nil {
			def.OnStats(p.snapshot(), *msg.Stats)
		}
		return err
	case wire.TypeConnected:
		if p.heartbeat(time.Now()) { // heartbeat monitoring starts here
			p.persistConnected()
		}
		s.log.Debug("child connected", "process", p.id, "name", def.Name)
		err := c.publish(Report{Kind: KindConnected, ProcessID: p.id, Name: def.Name, Raw: p.ref})
		c.callOnMessage(msg)
		return err
	case wire.TypeDisconnecting:
		s.log.Debug("child disconnecting", "process", p.id, "name", def.Name)
		_ = p.on(event{kind: evGoodbye})
		c.callOnMessage(msg)
		return nil
	}
	return reject(wire.CodeUnknownType, "unknown message type %q (expected connected, heartbeat, stats, event or disconnecting)", msg.Type)
}

// persistConnected records that the child has connected, so that a node
// re-adopting it monitors its heartbeat (and one that never connected is
// left to its exit). If the process ended meanwhile, the ended record is
// written again, so that a running one written late cannot stand.
func (p *process) persistConnected() {
	_ = p.sup.persist(p)
	if p.finished() {
		_ = p.sup.persist(p)
	}
}

func (c *conn) callOnMessage(msg *wire.Message) {
	if c.p.def.OnMessage != nil {
		c.p.def.OnMessage(c.p.snapshot(), *msg)
	}
}

func (c *conn) publish(r Report) error {
	if err := c.p.sup.rep.Publish(r); err != nil {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return nil
}

// relayEvent validates a custom event and reports it with the child's data
// spread next to processId and name.
func (c *conn) relayEvent(msg *wire.Message) error {
	p, def := c.p, c.p.def
	if !api.ValidToken(msg.Event) {
		if msg.Event == "" {
			return reject(wire.CodeMissingField, `event message has no "event" name`)
		}
		return reject(wire.CodeInvalidEvent, "event name %q must be 1 to 64 characters of A-Z a-z 0-9 _ -", msg.Event)
	}
	if msg.Event == ReservedEventName {
		return reject(wire.CodeInvalidEvent, "event name %q is reserved (send a stats message instead)", msg.Event)
	}
	var sch *schema.Schema
	if len(def.schemas) > 0 {
		var ok bool
		if sch, ok = def.schemas[msg.Event]; !ok {
			return reject(wire.CodeUnknownEvent, "event %q is not defined for %q (defined: %s)", msg.Event, def.Name, eventList(def.schemas))
		}
	}
	data := msg.Data
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	var badKey string
	isObject := wire.ObjectKeys(data, func(key []byte) {
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k) == nil {
				key = []byte(k)
			}
		}
		if string(key) == "processId" || string(key) == "name" {
			badKey = string(key)
		}
	})
	if !isObject {
		return reject(wire.CodeInvalidEvent, "event %q: data must be a JSON object, got %s", msg.Event, wire.ValueKind(data))
	}
	if badKey != "" {
		return reject(wire.CodeInvalidEvent, "event %q: data may not use the key %q (the node sets it)", msg.Event, badKey)
	}
	if sch != nil {
		if err := validate(sch, data); err != nil {
			return reject(wire.CodeSchemaInvalid, "event %q does not match its schema: %v", msg.Event, err)
		}
	}
	// Payload: {"processId":..,"name":.. then the data's members.
	buf := append(c.scratch[:0], p.eventPrefix...)
	inner := bytes.TrimSpace(data)
	inner = bytes.TrimSpace(inner[1 : len(inner)-1])
	if len(inner) > 0 {
		buf = append(buf, ',')
		buf = append(buf, inner...)
	}
	buf = append(buf, '}')
	c.scratch = buf
	if len(msg.ID) == 0 {
		return c.publish(Report{Kind: KindEvent, ProcessID: p.id, Name: def.Name, Event: msg.Event, Raw: buf})
	}
	id := append(json.RawMessage(nil), msg.ID...) // msg.ID aliases the read buffer
	c.msgID = wire.AppendIDText(append(append(c.msgID[:0], p.id...), ':'), id)
	if !c.awaitRoom() {
		return fmt.Errorf("%w: %w", errUnavailable, net.ErrClosed)
	}
	c.unanswered.Add(1)
	err := c.publish(Report{Kind: KindEvent, ProcessID: p.id, Name: def.Name, Event: msg.Event,
		MsgID: string(c.msgID), Raw: buf, Done: func(err error) {
			c.answered()
			c.answerLater(id, err)
		}})
	if err != nil {
		c.unanswered.Add(-1)
		return err
	}
	return errDeferred
}

func eventList(m map[string]*schema.Schema) string {
	names := sortedNames(m)
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// validate runs a schema check, turning a panic of the validator library
// into an error so that one hostile event cannot take the node down.
func validate(sch *schema.Schema, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("validator failed on this data: %v", r)
		}
	}()
	return sch.Validate(data)
}
