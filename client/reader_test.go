package client

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"github.com/corral-run/corral/client/wire"
)

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		line    string
		answer  bool
		id      uint64
		errCode string
	}{
		{`{"type":"ack","id":42}`, true, 42, ""},
		{`{"id":7,"type":"ack"}`, true, 7, ""},
		{`{"type":"ack","id":"9"}`, true, 9, ""},
		{`{"type":"error","id":3,"code":"schema_invalid","message":"bad"}`, true, 3, "schema_invalid"},
		{`{"type":"error","id":null,"code":"line_too_long","message":"long"}`, true, 0, "line_too_long"},
		{`{"type":"ack","id":"abc"}`, true, 0, ""},
		{`{"type":"ack"}`, false, 0, ""},
		{`{"type":"subscribe","id":1}`, false, 0, ""},
		{`[1,2]`, false, 0, ""},
		{`"ack"`, false, 0, ""},
		{`{"type":"ack","id":`, false, 0, ""},
		{`{"type":"ack","id":}`, false, 0, ""},
		{``, false, 0, ""},
	} {
		a, ok := parseAnswer([]byte(tc.line))
		code := ""
		if a.err != nil {
			code = a.err.Code
		}
		if ok != tc.answer || a.id != tc.id || code != tc.errCode {
			t.Errorf("%s: got answer=%v id=%d code=%q; want %v %d %q", tc.line, ok, a.id, code, tc.answer, tc.id, tc.errCode)
		}
	}
}

func FuzzReadLines(f *testing.F) {
	f.Add([]byte("{\"type\":\"ack\",\"id\":1}\n{\"type\":\"error\",\"id\":2,\"code\":\"x\"}\n[1]\n"), 8)
	f.Add([]byte(strings.Repeat("a", 100)+"\nb\n"), 3)
	f.Fuzz(func(t *testing.T, input []byte, max int) {
		if max < 1 || max > 1<<16 {
			return
		}
		r := bufio.NewReaderSize(strings.NewReader(string(input)), 16)
		var buf []byte
		for {
			line, err := wire.ReadLine(r, max, &buf)
			if errors.Is(err, wire.ErrLineTooLong) {
				continue
			}
			if err != nil {
				return
			}
			if len(line) > max || strings.ContainsRune(string(line), '\n') {
				t.Fatalf("line %q breaks the limit %d or holds a newline", line, max)
			}
			parseAnswer(line)
		}
	})
}
