package service

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/corral-run/corral/api"
)

// fitLog keeps the newest whole lines that fit, else the end of the last
// line from a character's start, and fails only when nothing fits.
func TestFitLog(t *testing.T) {
	type reply struct {
		Log string `json:"log"`
		Cut bool   `json:"cut,omitempty"`
	}
	// A limit of 2048-256 = 1792 bytes, of which {"log":"","cut":true} takes
	// 21: 17 lines of 101 bytes (an escaped newline takes 2), 126 of "<>\n"
	// (14 bytes: \u003c\u003e\n), 885 é (2 bytes each).
	const maxPayload = 2048
	line := strings.Repeat("a", 99) + "\n"
	for _, tc := range []struct {
		name, log, want string
		cut             bool
	}{
		{"empty", "", "", false},
		{"fits", "one\ntwo\n", "one\ntwo\n", false},
		{"lines", strings.Repeat(line, 30), strings.Repeat(line, 17), true},
		{"escaped lines", strings.Repeat("<>\n", 200), strings.Repeat("<>\n", 126), true},
		{"no final newline", strings.Repeat(line, 30) + "end", strings.Repeat(line, 17) + "end", true},
		{"a long last line", "first\n" + strings.Repeat("é", 2000), strings.Repeat("é", 885), true},
	} {
		b, err := fitLog(tc.log, maxPayload, func(log string, cut bool) []byte {
			b, _ := json.Marshal(reply{log, cut})
			return b
		})
		var got reply
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		if err != nil || got.Log != tc.want || got.Cut != tc.cut || len(b) > maxPayload-256 || !utf8.ValidString(got.Log) {
			t.Errorf("%s: %d bytes, %v, cut %v, %d bytes of log (want %d)", tc.name, len(b), err, got.Cut, len(got.Log), len(tc.want))
		}
	}
	_, err := fitLog("x", 10, func(string, bool) []byte { return []byte(strings.Repeat(" ", 20)) })
	if !errors.Is(err, api.ErrNoCapacity) || !strings.Contains(err.Error(), "max_payload (10 bytes)") {
		t.Errorf("nothing fits: %v", err)
	}
}
