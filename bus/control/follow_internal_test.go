package control

import (
	"fmt"
	"strings"
	"testing"
)

// A follower keeps each byte once, in order, whatever the order and
// overlap of what it receives, and says what it missed: a gap, or a new
// count when the node began anew.
func TestLogPositionHandsEachByteOnce(t *testing.T) {
	at := logPosition{epoch: 1, off: 10}
	var got []string
	fn := func(o Output) error {
		if o.Missed != 0 {
			got = append(got, fmt.Sprintf("missed %d", o.Missed))
		} else {
			got = append(got, string(o.Data))
		}
		return nil
	}
	for _, m := range []struct {
		epoch, off int64
		data       string
	}{
		{1, 0, "0123456789"},   // before the tail's end: had it
		{1, 5, "56789abc"},     // straddles it: the new part
		{1, 13, "def"},         // next
		{1, 14, "ef"},          // had it
		{1, 20, "klm"},         // a gap of 4
		{2, 0, "new count"},    // the node restarted
		{2, 9, "and on"},       //
		{2, 9, "and on again"}, // the rest only
	} {
		if err := at.hand(m.epoch, m.off, []byte(m.data), fn); err != nil {
			t.Fatal(err)
		}
	}
	want := "abc|def|missed 4|klm|missed -1|new count|and on| again"
	if s := strings.Join(got, "|"); s != want {
		t.Errorf("handed %s\nwant   %s", s, want)
	}
}

// Lines hands over whole lines only, keeps an unfinished one until it is
// finished, and cuts one that never is at 64 KiB.
func TestLines(t *testing.T) {
	var l Lines
	for _, tc := range []struct{ in, out string }{
		{"a\nb", "a\n"},
		{"c\n", "bc\n"},
		{"", ""},
		{"d\ne\nf", "d\ne\n"},
	} {
		if got := string(l.Add([]byte(tc.in))); got != tc.out {
			t.Errorf("Add(%q) = %q, want %q", tc.in, got, tc.out)
		}
	}
	if got := string(l.Rest()); got != "f\n" {
		t.Errorf("Rest = %q", got)
	}
	if l.Rest() != nil {
		t.Error("Rest twice")
	}
	long := strings.Repeat("x", maxPartialLine+10)
	if got := string(l.Add([]byte(long))); got != long[:maxPartialLine]+"\n" {
		t.Errorf("a long line: %d bytes handed over", len(got))
	}
	if got := string(l.Rest()); got != strings.Repeat("x", 10)+"\n" {
		t.Errorf("its rest: %q", got)
	}
}
