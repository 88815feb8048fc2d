package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		wantErr    error
		wantText   string
		wantID     string
	}{
		{"connected", `{"type":"connected","processId":"p","timestamp":1738712345801}`, nil, "", ""},
		{"event with id", `{"type":"event","event":"progress","data":{"percent":50},"processId":"p","timestamp":1,"id":7}`, nil, "", "7"},
		{"string id", `{"type":"heartbeat","processId":"p","timestamp":1.5,"id":"a"}`, nil, "", `"a"`},
		{"not JSON", `hello`, ErrMalformed, "invalid JSON", ""},
		{"truncated", `{"type":"event",`, ErrMalformed, "invalid JSON", ""},
		{"array", `[1]`, ErrMalformed, "expected a JSON object", ""},
		{"number", `42`, ErrMalformed, "expected a JSON object", ""},
		{"type not a string", `{"type":1,"processId":"p","timestamp":1,"id":3}`, ErrMalformed, `field "type" must be a string`, "3"},
		{"timestamp string", `{"type":"heartbeat","processId":"p","timestamp":"x","id":"k"}`, ErrMalformed, `"timestamp" must be a number`, `"k"`},
		{"id object", `{"type":"heartbeat","processId":"p","timestamp":1,"id":{}}`, ErrMalformed, "id must be a string or a number", ""},
		{"id bool", `{"type":"heartbeat","processId":"p","timestamp":1,"id":true}`, ErrMalformed, "id must be a string or a number", ""},
		{"no type", `{"processId":"p","timestamp":1}`, ErrMissingField, `no "type"`, ""},
		{"empty type", `{"type":"","processId":"p","timestamp":1}`, ErrMissingField, `no "type"`, ""},
		{"no processId", `{"type":"heartbeat","timestamp":1}`, ErrMissingField, `no "processId"`, ""},
		{"no timestamp", `{"type":"heartbeat","processId":"p"}`, ErrMissingField, `"timestamp"`, ""},
		{"null timestamp", `{"type":"heartbeat","processId":"p","timestamp":null}`, ErrMissingField, `"timestamp"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			err := Decode([]byte(tc.line), &m)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err %q does not mention %q", err, tc.wantText)
			}
			if string(m.ID) != tc.wantID {
				t.Errorf("id %s, want %s", m.ID, tc.wantID)
			}
		})
	}
}

func TestTimestamps(t *testing.T) {
	for _, ts := range []string{"0", "1738712345801", "999999999999999", "1000000000000000", "-5", "1.5", "1e3", "12345678901234567890", "1e400"} {
		var m Message
		err := Decode([]byte(`{"type":"heartbeat","processId":"p","timestamp":`+ts+`}`), &m)
		want, werr := strconv.ParseFloat(ts, 64)
		if (err != nil) != (werr != nil) || err == nil && m.Timestamp != want {
			t.Errorf("timestamp %s: %v %v, strconv %v %v", ts, m.Timestamp, err, want, werr)
		}
	}
}

func TestReplies(t *testing.T) {
	if got := string(AppendAck(nil, json.RawMessage(`"x"`))); got != "{\"type\":\"ack\",\"id\":\"x\"}\n" {
		t.Errorf("ack %q", got)
	}
	got := string(AppendError(nil, nil, CodeMalformed, `bad "line"`))
	if got != "{\"type\":\"error\",\"id\":null,\"code\":\"malformed\",\"message\":\"bad \\\"line\\\"\"}\n" {
		t.Errorf("error %q", got)
	}
	var r Reply
	if err := json.Unmarshal([]byte(got), &r); err != nil || r.Message != `bad "line"` {
		t.Errorf("error reply does not round-trip: %v %+v", err, r)
	}
}

func TestObjectKeys(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		keys string
		ok   bool
	}{
		{`{}`, "", true},
		{` { "a" : 1 , "b":{"c":[1,{"d":2}]},"e":"x,\"y\"" } `, "a,b,e", true},
		{`{"a\"b":1}`, `a\"b`, true},
		{`[1]`, "", false},
		{`"s"`, "", false},
		{`null`, "", false},
	} {
		var keys []string
		ok := ObjectKeys([]byte(tc.raw), func(k []byte) { keys = append(keys, string(k)) })
		if ok != tc.ok || strings.Join(keys, ",") != tc.keys {
			t.Errorf("ObjectKeys(%s) = %v %v, want %q %v", tc.raw, keys, ok, tc.keys, tc.ok)
		}
	}
}

func TestIDText(t *testing.T) {
	for raw, want := range map[string]string{`"abc"`: "abc", `12`: "12", `"a\"b"`: `a"b`, `""`: "", `"\u00e9t\u00e9"`: "été", `-1.5e3`: "-1.5e3"} {
		if got := IDText(json.RawMessage(raw)); got != want {
			t.Errorf("IDText(%s) = %q, want %q", raw, got, want)
		}
		if got := string(AppendIDText([]byte("p:"), json.RawMessage(raw))); got != "p:"+want {
			t.Errorf("AppendIDText(%s) = %q, want %q", raw, got, "p:"+want)
		}
	}
}

// FuzzDecode feeds arbitrary lines to the decoder: it must never panic, a
// success must carry the required fields, and the keys ObjectKeys reports
// for valid data must be the object's keys.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"event","event":"progress","data":{"percent":50},"processId":"p","timestamp":1,"id":7}`,
		`{"type":"stats","stats":{"cpu":{"user":1,"system":2,"percent":3},"memory":{"rss":4,"heapTotal":5,"heapUsed":6,"external":7},"uptime":8},"processId":"p","timestamp":1}`,
		`{"type":"heartbeat","processId":"p","timestamp":1,"id":"x"}`,
		`{"a":`, `[]`, `null`, `{"data":{"k\"":[{}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var m Message
		if err := Decode(line, &m); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		if m.Type == "" || m.ProcessID == "" {
			t.Fatalf("decoded without required fields: %+v", m)
		}
		if len(m.Data) > 0 {
			var obj map[string]json.RawMessage
			isObj := json.Unmarshal(m.Data, &obj) == nil && obj != nil
			n := 0
			got := ObjectKeys(m.Data, func([]byte) { n++ })
			if got != isObj {
				t.Fatalf("ObjectKeys(%s) object=%v, json says %v", m.Data, got, isObj)
			}
			if isObj && n < len(obj) {
				t.Fatalf("ObjectKeys(%s) saw %d keys, object has %d", m.Data, n, len(obj))
			}
		}
	})
}

// FuzzDecodeMatchesEncodingJSON checks the fast decoder against a plain
// encoding/json reading of the same line (exact keys, last duplicate wins).
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"type":"event","event":"p\u0041","data":{"a":"\"}"},"processId":"p\"q","timestamp":1e3,"id":"a\"b"}`,
		`{"type":"heartbeat","processId":"p","timestamp":-1.5,"id":12,"type":"stats"}`,
		` {"type" : "x" , "processId":"p","timestamp":0,"id":null} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var m Message
		err := Decode(line, &m)
		var ref map[string]json.RawMessage
		if json.Unmarshal(line, &ref) != nil || ref == nil {
			if err == nil {
				t.Fatalf("accepted what encoding/json rejects: %q", line)
			}
			return
		}
		str := func(k string) (string, bool) {
			var s string
			raw, ok := ref[k]
			if !ok || string(raw) == "null" {
				return "", true
			}
			return s, json.Unmarshal(raw, &s) == nil
		}
		typ, ok1 := str("type")
		pid, ok2 := str("processId")
		ev, ok3 := str("event")
		if !ok1 || !ok2 || !ok3 {
			if err == nil {
				t.Fatalf("accepted a non-string field: %q", line)
			}
			return
		}
		if err != nil {
			return // other rules (timestamp, data, stats, id) are checked by TestDecode
		}
		if m.Type != typ || m.ProcessID != pid || m.Event != ev {
			t.Fatalf("decoded %q/%q/%q, encoding/json %q/%q/%q from %q", m.Type, m.ProcessID, m.Event, typ, pid, ev, line)
		}
		if id, ok := ref["id"]; ok && string(id) != "null" && string(m.ID) != string(id) {
			t.Fatalf("id %s, encoding/json %s", m.ID, id)
		}
		if d, ok := ref["data"]; ok && string(d) != "null" && string(m.Data) != string(d) {
			t.Fatalf("data %s, encoding/json %s", m.Data, d)
		}
	})
}

// A Decoder decodes a sequence of lines as Decode decodes each, whatever
// strings it keeps from earlier lines.
func TestDecoderMatchesDecode(t *testing.T) {
	lines := []string{
		`{"type":"event","event":"progress","data":{"percent":1},"processId":"p1","timestamp":1}`,
		`{"type":"event","event":"progress","data":{"percent":2},"processId":"p1","timestamp":2,"id":3}`,
		`{"type":"event","event":"done","processId":"p2","timestamp":3}`,
		`{"type":"heartbeat","processId":"p1","timestamp":4}`,
		`{"type":"event","event":"pro\u0067ress","processId":"p\u0031","timestamp":5}`,
		`{"type":"later","processId":"p1","timestamp":6}`,
		`{"type":"event","event":"progress","processId":"p1","timestamp":"x"}`,
	}
	for i := range 2 * maxEventNames { // more names than it keeps
		lines = append(lines, fmt.Sprintf(`{"type":"event","event":"e%d","processId":"p1","timestamp":7}`, i%(maxEventNames+8)))
	}
	var d Decoder
	for _, line := range lines {
		var got, want Message
		gotErr, wantErr := d.Decode([]byte(line), &got), Decode([]byte(line), &want)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Decoder %+v %v, Decode %+v %v", line, got, gotErr, want, wantErr)
		}
	}
	if len(d.events) > maxEventNames {
		t.Errorf("the decoder keeps %d event names, more than %d", len(d.events), maxEventNames)
	}
}

// Once it has seen a child's process id and event names, a Decoder
// allocates nothing for the child's usual lines.
func TestDecoderReusesStrings(t *testing.T) {
	lines := [][]byte{
		[]byte(`{"type":"event","event":"progress","data":{"percent":50,"fps":30},"processId":"proc_a","timestamp":1738712345801,"id":"00000012"}`),
		[]byte(`{"type":"event","event":"complete","data":{},"processId":"proc_a","timestamp":1738712345801}`),
		[]byte(`{"type":"heartbeat","processId":"proc_a","timestamp":1738712345801}`),
	}
	var d Decoder
	var m Message
	for _, line := range lines {
		if err := d.Decode(line, &m); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, line := range lines {
			_ = d.Decode(line, &m)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations for %d lines", allocs, len(lines))
	}
}

func TestValidJSONDeepNesting(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{strings.Repeat("[", 5000) + strings.Repeat("]", 5000), true},
		{`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, false}, // deeper than encoding/json follows
		{strings.Repeat("[", 999) + strings.Repeat("]", 998), false},
	} {
		if got := validJSON([]byte(tc.line)); got != tc.want || got != json.Valid([]byte(tc.line)) {
			t.Errorf("validJSON(%d bytes) = %v, want %v (json.Valid %v)", len(tc.line), got, tc.want, json.Valid([]byte(tc.line)))
		}
	}
}

// FuzzValidJSON checks the fast validity check against json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, `01`, `-`, `1.`, `1e`, `"\x01"`, `"\u12"`, ` {} `, `{} {}`,
		`[1,]`, `{"a" 1}`, `"\/"`, "\xef\xbb\xbf{}", `-0`, `0.0e-0`, `1E5`, `{"a":1,}`, `[`, `]`, `tru`, `nul`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}

func BenchmarkDecoder(b *testing.B) {
	line := []byte(`{"type":"event","event":"progress","processId":"proc_y1lh8i24ssmypvha","timestamp":1738712345801,"data":{"k":"00000012","t":"1738712345801000000","pad":"xxxxxxxxxxxxxxxxxxxxxx"},"id":"00000012"}`)
	var d Decoder
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(line, &m); err != nil {
			b.Fatal(err)
		}
	}
}
