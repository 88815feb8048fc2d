package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads lines until an error other than ErrLineTooLong, and
// returns what it read: each line (copied), or "!" for one too long.
func readAll(r *bufio.Reader, max int, long *[]byte) ([]string, error) {
	var got []string
	for {
		line, err := ReadLine(r, max, long)
		switch {
		case errors.Is(err, ErrLineTooLong):
			got = append(got, "!")
		case err != nil:
			return got, err
		default:
			got = append(got, string(line))
		}
	}
}

func TestReadLine(t *testing.T) {
	const max = 40
	x := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name  string
		input string
		size  int // the bufio.Reader's buffer (16 is the least it takes)
		want  []string
	}{
		{"short lines", "a\nbc\n\n", 16, []string{"a", "bc", ""}},
		{"a line of exactly the limit", x(max) + "\nz\n", 64, []string{x(max), "z"}},
		{"one byte over the limit", x(max+1) + "\nz\n", 64, []string{"!", "z"}},
		{"longer than the buffer, within the limit", x(max) + "\nz\n", 16, []string{x(max), "z"}},
		{"longer than the buffer and the limit", x(100) + "\nz\n", 16, []string{"!", "z"}},
		{"the buffer ends right before the newline", x(16) + "\nz\n", 16, []string{x(16), "z"}},
		{"over the limit by the last fragment only", x(32) + x(max-32+1) + "\nz\n", 16, []string{"!", "z"}},
		{"carriage returns are the caller's", "a\r\nb\r\r\n", 16, []string{"a\r", "b\r\r"}},
		{"a partial last line is dropped", "a\npartial", 16, []string{"a"}},
		{"a partial long last line is dropped", "a\n" + x(100), 16, []string{"a"}},
		{"a partial too-long last line is dropped", "a\n" + x(max+100), 16, []string{"a"}},
		{"nothing", "", 16, nil},
		{"the client's mix", "short\n" + x(100) + "\n" + strings.Repeat("y", max) + "\n" + strings.Repeat("z", max+1) + "\nlast\npartial",
			16, []string{"short", "!", strings.Repeat("y", max), "!", "last"}},
	} {
		for _, keepBuf := range []bool{false, true} {
			var long *[]byte
			if keepBuf {
				long = new([]byte)
			}
			r := bufio.NewReaderSize(strings.NewReader(tc.input), tc.size)
			got, err := readAll(r, max, long)
			if !errors.Is(err, io.EOF) || strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("%s (kept buffer %v): got %q, %v; want %q, EOF", tc.name, keepBuf, got, err, tc.want)
			}
		}
	}
}

// A reader's error ends reading; a line it cut short is dropped.
func TestReadLineReturnsTheReadersError(t *testing.T) {
	boom := errors.New("boom")
	for _, input := range []string{"", "ab", strings.Repeat("x", 100)} {
		r := bufio.NewReaderSize(io.MultiReader(strings.NewReader("ok\n"+input), iotest.ErrReader(boom)), 16)
		got, err := readAll(r, 40, new([]byte))
		if !errors.Is(err, boom) || len(got) != 1 || got[0] != "ok" {
			t.Errorf("after %q: got %q, %v; want [ok], boom", input, got, err)
		}
	}
}

// An over-long line is consumed whole without holding more than the limit.
func TestReadLineHoldsNoMoreThanTheLimit(t *testing.T) {
	const max = 100
	input := strings.Repeat("x", 10<<20) + "\nafter\n"
	r := bufio.NewReaderSize(strings.NewReader(input), 16)
	var long []byte
	got, err := readAll(r, max, &long)
	if !errors.Is(err, io.EOF) || len(got) != 2 || got[0] != "!" || got[1] != "after" {
		t.Fatalf("got %q, %v", got, err)
	}
	if cap(long) > 2*(max+1) {
		t.Errorf("assembled in %d bytes for a limit of %d", cap(long), max)
	}
}

// A line that fits the buffer costs no allocation; nor does a long one
// when the buffer is kept.
func TestReadLineDoesNotAllocate(t *testing.T) {
	short := strings.Repeat(`{"type":"heartbeat"}`+"\n", 200)
	long := strings.Repeat(strings.Repeat("x", 50)+"\n", 200)
	for _, tc := range []struct {
		name, input string
	}{{"short lines", short}, {"lines longer than the buffer", long}} {
		src := strings.NewReader(tc.input)
		r := bufio.NewReaderSize(src, 16)
		buf := make([]byte, 0, 64)
		n := testing.AllocsPerRun(100, func() {
			if _, err := ReadLine(r, 1000, &buf); err != nil {
				src.Reset(tc.input)
				r.Reset(src)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per line", tc.name, n)
		}
	}
}

// referenceLines is what ReadLine must yield for input, said the simple
// way: split on newlines, a line over max is "!", the part after the last
// newline is dropped.
func referenceLines(input []byte, max int) []string {
	parts := bytes.Split(input, []byte("\n"))
	var want []string
	for _, line := range parts[:len(parts)-1] {
		if len(line) > max {
			want = append(want, "!")
		} else {
			want = append(want, string(line))
		}
	}
	return want
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("a\nbc\n\nlast"), uint8(0), uint16(3))
	f.Add([]byte(strings.Repeat("x", 100)+"\ny\n"), uint8(3), uint16(40))
	f.Add([]byte(strings.Repeat("x", 33)+"\n"+strings.Repeat("z", 16)+"\n"), uint8(0), uint16(32))
	f.Add([]byte("\r\n\n\r"), uint8(1), uint16(0))
	f.Fuzz(func(t *testing.T, input []byte, size uint8, limit uint16) {
		// Small buffers and limits, so that lines fit the buffer, span it,
		// and run over the limit in every combination.
		bufSize := 16 + int(size)%64 // bufio's least, up to a few lines' worth
		max := int(limit) % 256
		want := referenceLines(input, max)
		for _, keepBuf := range []bool{false, true} {
			var long *[]byte
			if keepBuf {
				long = new([]byte)
			}
			r := bufio.NewReaderSize(bytes.NewReader(input), bufSize)
			got, err := readAll(r, max, long)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ended with %v, want EOF", err)
			}
			if len(got) != len(want) {
				t.Fatalf("buffer %d, max %d, kept %v: %d lines %q, want %d %q", bufSize, max, keepBuf, len(got), got, len(want), want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("buffer %d, max %d, kept %v: line %d is %q, want %q", bufSize, max, keepBuf, i, got[i], want[i])
				}
			}
		}
	})
}
