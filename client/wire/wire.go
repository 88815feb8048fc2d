// Package wire holds the child wire protocol shared by the node and the Go
// client: newline-delimited JSON objects over a per-process Unix socket or
// loopback TCP port (DESIGN.md, "The child wire protocol").
//
// It owns the message types, the bounded line reader both ends read with
// (ReadLine), the strict decoder for child→node lines and the encoders for
// node→child replies. It imports nothing of Corral's and nothing of NATS,
// so any child (and the node) can use it.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/buger/jsonparser"
	"github.com/tidwall/gjson"
)

// Message types a child sends.
const (
	TypeConnected     = "connected"
	TypeHeartbeat     = "heartbeat"
	TypeStats         = "stats"
	TypeEvent         = "event"
	TypeDisconnecting = "disconnecting"
)

// Message types the node sends back in answer to a line that carried an id.
const (
	TypeAck   = "ack"
	TypeError = "error"
)

// Environment variables the node gives every child (same names as the
// original ProcessClient, so existing wrapper scripts keep working).
const (
	EnvProcessID  = "DONKEYLABS_PROCESS_ID"
	EnvSocketPath = "DONKEYLABS_SOCKET_PATH"
	EnvTCPPort    = "DONKEYLABS_TCP_PORT"
	EnvMetadata   = "DONKEYLABS_METADATA"
)

// DefaultMaxLineBytes is the longest line either side accepts unless
// configured otherwise (1 MiB).
const DefaultMaxLineBytes = 1 << 20

// Message is one child→node line. Which fields are set depends on Type.
type Message struct {
	// Type is one of connected, heartbeat, stats, event, disconnecting.
	Type string `json:"type" jsonschema:"enum=connected,enum=heartbeat,enum=stats,enum=event,enum=disconnecting"`
	// ProcessID must equal the id of the process that owns the socket.
	ProcessID string `json:"processId"`
	// Timestamp is the sender's clock in milliseconds since the Unix epoch.
	Timestamp float64 `json:"timestamp"`
	// ID, when present (a string or a number), asks the node to answer the
	// line with an ack or an error carrying the same id.
	ID json.RawMessage `json:"id,omitempty" jsonschema:"oneof_type=string;number"`
	// Event is the event name (type event only): a subject token.
	Event string `json:"event,omitempty"`
	// Data is the event payload (type event only): a JSON object.
	Data json.RawMessage `json:"data,omitempty" jsonschema:"type=object"`
	// Stats is the child's own resource sample (type stats only).
	Stats *Stats `json:"stats,omitempty"`
}

// Stats is the spec's ProcessStats shape.
type Stats struct {
	CPU    CPUStats    `json:"cpu"`
	Memory MemoryStats `json:"memory"`
	// Uptime is the process uptime in seconds.
	Uptime float64 `json:"uptime"`
}

// CPUStats: user and system CPU time in microseconds since the previous
// sample, and the share of one core used over that interval (can exceed 100).
type CPUStats struct {
	User    float64 `json:"user"`
	System  float64 `json:"system"`
	Percent float64 `json:"percent"`
}

// MemoryStats in bytes. Heap figures are 0 for runtimes that have none.
type MemoryStats struct {
	RSS       float64 `json:"rss"`
	HeapTotal float64 `json:"heapTotal"`
	HeapUsed  float64 `json:"heapUsed"`
	External  float64 `json:"external"`
}

// Reply is a node→child answer to a line that carried an id.
type Reply struct {
	// Type is ack or error.
	Type string `json:"type" jsonschema:"enum=ack,enum=error"`
	// ID is the line's id; null on errors about lines whose id was unreadable.
	ID json.RawMessage `json:"id" jsonschema:"oneof_type=string;number;null"`
	// Code and Message are set on errors only.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Error codes carried by error replies.
const (
	CodeMalformed     = "malformed"      // not a JSON object, or a field of the wrong type
	CodeMissingField  = "missing_field"  // type, processId or timestamp absent
	CodeWrongProcess  = "wrong_process"  // processId is not the socket's process
	CodeUnknownType   = "unknown_type"   // type is not one of the protocol's
	CodeInvalidEvent  = "invalid_event"  // bad or reserved event name, bad data
	CodeUnknownEvent  = "unknown_event"  // the definition lists events and this is not one
	CodeSchemaInvalid = "schema_invalid" // data does not match the event's schema
	CodeLineTooLong   = "line_too_long"  // the line exceeds the size limit
	CodeUnavailable   = "unavailable"    // the node could not hand the message on
	CodeForbidden     = "forbidden"      // the connection is not the process's own: closed after this line
	CodeInternal      = "internal"       // anything else
)

// ErrMalformed and friends classify a decoding failure; test with errors.Is.
var (
	ErrMalformed    = errors.New("malformed message")
	ErrMissingField = errors.New("missing field")
)

// DecodeError says what was wrong with a line.
type DecodeError struct {
	Code   string // CodeMalformed or CodeMissingField
	Reason string
	Err    error // ErrMalformed or ErrMissingField
}

func (e *DecodeError) Error() string { return e.Reason }
func (e *DecodeError) Unwrap() error { return e.Err }

// Decode parses one child→node line (without its newline). It checks the
// envelope only: a JSON object with type, processId and timestamp present
// and well typed, id a string or number, event a string, data and stats
// objects. Type-specific rules (event names, schemas) belong to the node.
// Keys match exactly (case-sensitive); of duplicate keys the last wins.
// When the error is returned, msg.ID is still filled in if the line was
// valid JSON with a usable id, so the caller can answer it.
//
// Data and ID alias line: they are valid only as long as line is.
//
// Decode makes new strings for every line; a Decoder reuses them.
func Decode(line []byte, msg *Message) error {
	var d Decoder
	return d.Decode(line, msg)
}

// Decoder decodes child→node lines as Decode does, and hands out again the
// strings it made for earlier lines (the process id, up to
// maxEventNames event names; the types are constants), so that decoding
// the lines a child usually sends allocates nothing. The zero value is
// ready to use. It is not safe for concurrent use: one reader (a
// connection's read loop) keeps one.
type Decoder struct {
	processID string
	events    map[string]string
}

// maxEventNames bounds the event names a Decoder keeps: a child that
// sends many names costs a string per line beyond them, not memory.
const maxEventNames = 64

// Decode decodes line into msg (see the function Decode).
func (d *Decoder) Decode(line []byte, msg *Message) error {
	*msg = Message{}
	if !validJSON(line) {
		var v any
		err := json.Unmarshal(line, &v)
		return &DecodeError{Code: CodeMalformed, Reason: "cannot decode line: " + describeJSONError(err), Err: ErrMalformed}
	}
	if !utf8.Valid(line) {
		return &DecodeError{Code: CodeMalformed, Reason: "cannot decode line: not valid UTF-8", Err: ErrMalformed}
	}
	trimmed := bytes.TrimLeft(line, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &DecodeError{Code: CodeMalformed, Reason: "cannot decode line: expected a JSON object, got " + ValueKind(trimmed), Err: ErrMalformed}
	}
	var typ, pid, ts, event, data, stats []byte
	var typT, pidT, tsT, eventT, dataT, statsT jsonparser.ValueType
	var id []byte
	_ = jsonparser.ObjectEach(trimmed, func(key, value []byte, t jsonparser.ValueType, offset int) error {
		switch string(key) {
		case "type":
			typ, typT = value, t
		case "processId":
			pid, pidT = value, t
		case "timestamp":
			ts, tsT = value, t
		case "id":
			id = nil
			switch t {
			case jsonparser.String:
				id = trimmed[offset-len(value)-2 : offset] // keep the quotes
			case jsonparser.Number:
				id = value
			case jsonparser.Null:
			default:
				id = []byte{0} // present but of the wrong type
			}
		case "event":
			event, eventT = value, t
		case "data":
			data, dataT = value, t
		case "stats":
			stats, statsT = value, t
		}
		return nil
	})
	if len(id) == 1 && id[0] == 0 {
		return &DecodeError{Code: CodeMalformed, Reason: "cannot decode line: id must be a string or a number", Err: ErrMalformed}
	}
	msg.ID = id
	var err error
	if msg.Type, err = stringField("type", typ, typT, messageType); err != nil {
		return err
	}
	if msg.ProcessID, err = stringField("processId", pid, pidT, d.processIDString); err != nil {
		return err
	}
	switch {
	case msg.Type == "":
		return &DecodeError{Code: CodeMissingField, Reason: `message has no "type" (expected one of connected, heartbeat, stats, event, disconnecting)`, Err: ErrMissingField}
	case msg.ProcessID == "":
		return &DecodeError{Code: CodeMissingField, Reason: `message has no "processId"`, Err: ErrMissingField}
	case tsT == jsonparser.NotExist || tsT == jsonparser.Null:
		return &DecodeError{Code: CodeMissingField, Reason: `message has no numeric "timestamp" (epoch milliseconds)`, Err: ErrMissingField}
	case tsT != jsonparser.Number:
		return wrongType("timestamp", "a number", tsT)
	}
	if msg.Timestamp, err = parseNumber(ts); err != nil {
		return wrongType("timestamp", "a number", tsT)
	}
	if msg.Event, err = stringField("event", event, eventT, d.eventString); err != nil {
		return err
	}
	switch dataT {
	case jsonparser.NotExist, jsonparser.Null:
	case jsonparser.Object:
		msg.Data = data
	default:
		return wrongType("data", "an object", dataT)
	}
	switch statsT {
	case jsonparser.NotExist, jsonparser.Null:
	case jsonparser.Object:
		msg.Stats = new(Stats)
		if err := json.Unmarshal(stats, msg.Stats); err != nil {
			return &DecodeError{Code: CodeMalformed, Reason: "cannot decode stats: " + describeJSONError(err), Err: ErrMalformed}
		}
	default:
		return wrongType("stats", "an object", statsT)
	}
	return nil
}

// parseNumber parses a JSON number (valid JSON already), an integer of
// up to 15 digits (epoch milliseconds, say) without strconv: exactly, and
// several times faster.
func parseNumber(b []byte) (float64, error) {
	if len(b) > 0 && len(b) <= 15 {
		var n int64
		for _, c := range b {
			if c < '0' || c > '9' {
				return strconv.ParseFloat(string(b), 64)
			}
			n = n*10 + int64(c-'0')
		}
		return float64(n), nil
	}
	return strconv.ParseFloat(string(b), 64)
}

// maxFastBrackets: a line with more opening brackets than this is checked
// by encoding/json, which bounds the nesting it follows; gjson's checker
// recurses once per level.
const maxFastBrackets = 1000

// validJSON reports whether line is one valid JSON value (as json.Valid),
// about four times as fast as json.Valid for a typical line.
func validJSON(line []byte) bool {
	if len(line) > maxFastBrackets && bytes.Count(line, []byte{'{'})+bytes.Count(line, []byte{'['}) > maxFastBrackets {
		return json.Valid(line)
	}
	return gjson.ValidBytes(line)
}

// messageType is the message type written in value, one of the constants
// when it is one.
func messageType(value []byte) string {
	switch string(value) {
	case TypeEvent:
		return TypeEvent
	case TypeHeartbeat:
		return TypeHeartbeat
	case TypeStats:
		return TypeStats
	case TypeConnected:
		return TypeConnected
	case TypeDisconnecting:
		return TypeDisconnecting
	}
	return string(value)
}

// processIDString returns the process id written in value, the same string
// as for the last line when it has not changed.
func (d *Decoder) processIDString(value []byte) string {
	if string(value) != d.processID {
		d.processID = string(value)
	}
	return d.processID
}

// eventString returns the event name written in value, a string made
// before when the name was seen before.
func (d *Decoder) eventString(value []byte) string {
	if s, ok := d.events[string(value)]; ok {
		return s
	}
	s := string(value)
	if len(d.events) < maxEventNames {
		if d.events == nil {
			d.events = make(map[string]string)
		}
		d.events[s] = s
	}
	return s
}

// stringField unescapes a string value; absent or null gives "". Values
// without escapes become strings through str.
func stringField(name string, value []byte, t jsonparser.ValueType, str func([]byte) string) (string, error) {
	switch t {
	case jsonparser.NotExist, jsonparser.Null:
		return "", nil
	case jsonparser.String:
		if bytes.IndexByte(value, '\\') < 0 {
			return str(value), nil
		}
		s, err := jsonparser.ParseString(value)
		if err != nil {
			return "", &DecodeError{Code: CodeMalformed, Reason: fmt.Sprintf("cannot decode line: field %q: %v", name, err), Err: ErrMalformed}
		}
		return s, nil
	}
	return "", wrongType(name, "a string", t)
}

func wrongType(field, want string, got jsonparser.ValueType) error {
	return &DecodeError{Code: CodeMalformed, Reason: fmt.Sprintf("cannot decode line: field %q must be %s, got %s", field, want, typeName(got)), Err: ErrMalformed}
}

func typeName(t jsonparser.ValueType) string {
	switch t {
	case jsonparser.String:
		return "a string"
	case jsonparser.Number:
		return "a number"
	case jsonparser.Object:
		return "an object"
	case jsonparser.Array:
		return "an array"
	case jsonparser.Boolean:
		return "a boolean"
	case jsonparser.Null:
		return "null"
	}
	return "nothing"
}

// ValueKind names the kind of a JSON value for error messages ("an
// array", "a string", …), from its first non-space byte.
func ValueKind(b []byte) string {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// IDText renders an id as text for message ids: a string id without its
// quotes, a number as written.
func IDText(id json.RawMessage) string {
	if len(id) > 0 && id[0] == '"' {
		if len(id) >= 2 && bytes.IndexByte(id, '\\') < 0 {
			return string(id[1 : len(id)-1])
		}
		var s string
		if json.Unmarshal(id, &s) == nil {
			return s
		}
	}
	return string(id)
}

// AppendIDText appends IDText(id) to dst.
func AppendIDText(dst []byte, id json.RawMessage) []byte {
	switch {
	case len(id) >= 2 && id[0] == '"' && bytes.IndexByte(id, '\\') < 0:
		return append(dst, id[1:len(id)-1]...)
	case len(id) > 0 && id[0] == '"':
		return append(dst, IDText(id)...)
	}
	return append(dst, id...)
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be a %s, got %s", typ.Field, typ.Type.Kind(), typ.Value)
	}
	return err.Error()
}

// AppendAck appends {"type":"ack","id":ID} and a newline to dst.
func AppendAck(dst []byte, id json.RawMessage) []byte {
	dst = append(dst, `{"type":"ack","id":`...)
	dst = append(dst, id...)
	return append(dst, "}\n"...)
}

// AppendError appends an error reply and a newline to dst. A nil id is
// written as null (used for lines whose id could not be read).
func AppendError(dst []byte, id json.RawMessage, code, message string) []byte {
	dst = append(dst, `{"type":"error","id":`...)
	if len(id) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, id...)
	}
	dst = append(dst, `,"code":`...)
	c, _ := json.Marshal(code)
	dst = append(dst, c...)
	dst = append(dst, `,"message":`...)
	msg, _ := json.Marshal(message)
	dst = append(dst, msg...)
	return append(dst, "}\n"...)
}

// ObjectKeys calls fn for every top-level key of a JSON object that is
// already known to be valid JSON (as json.RawMessage from a successful
// Unmarshal is). It returns false when raw is not an object.
func ObjectKeys(raw []byte, fn func(key []byte)) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '{' {
		return false
	}
	depth := 0
	expectKey := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			depth++
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end := i + 1
			for end < len(raw) && raw[end] != '"' {
				if raw[end] == '\\' {
					end++
				}
				end++
			}
			if expectKey && depth == 1 {
				fn(raw[i+1 : end])
				expectKey = false
			}
			i = end
		}
	}
	return true
}
