package procstat

import (
	"bytes"
	"os"
	"testing"
)

// A real line from /proc/<pid>/stat (cat), fields as in proc(5).
const catStat = "28931 (cat) R 28929 28929 22010 0 -1 4194304 101 0 0 0 7 3 5 2 20 0 1 0 160242 3133440 411 18446744073709551615 94861247246336 94861247266217 140727587087344 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94861247282224 94861247283840 94861530849280 140727587089091 140727587089111 140727587089111 140727587090411 0\n"

func TestParseStat(t *testing.T) {
	want := stat{ppid: 28929, pgid: 28929, sid: 22010, utime: 7, stime: 3, cutime: 5, cstime: 2, start: 160242, rss: 411}
	tail := " R 28929 28929 22010 0 -1 4194304 101 0 0 0 7 3 5 2 20 0 1 0 160242 3133440 411 18446744073709551615 0 0\n"
	tests := []struct {
		name, line string
		want       stat
		ok         bool
	}{
		{"real line", catStat, want, true},
		{"comm with spaces and parentheses", "7 (a (b) c)" + tail, want, true},
		{"comm ending in a parenthesis", "7 (x) 1 2))" + tail, want, true},
		{"empty comm", "7 ()" + tail, want, true},
		{"rss is the last field", "7 (x) R 1 2 3 0 -1 0 0 0 0 0 7 3 5 2 20 0 1 0 9 0 11\n",
			stat{ppid: 1, pgid: 2, sid: 3, utime: 7, stime: 3, cutime: 5, cstime: 2, start: 9, rss: 11}, true},
		{"negative cutime reads as 0", "7 (x) R 1 2 3 0 -1 0 0 0 0 0 7 3 -5 2 20 0 1 0 9 0 11 0",
			stat{ppid: 1, pgid: 2, sid: 3, utime: 7, stime: 3, cstime: 2, start: 9, rss: 11}, true},
		{"empty", "", stat{}, false},
		{"no parenthesis", "7 x R 1 2 3", stat{}, false},
		{"truncated", "7 (x) R 1 2 3 0 -1 0 0 0 0 0 7 3 5 2 20 0 1 0 9", stat{}, false},
		{"not a number", "7 (x) R one 2 3 0 -1 0 0 0 0 0 7 3 5 2 20 0 1 0 9 0 11 0", stat{}, false},
		{"negative ppid", "7 (x) R -1 2 3 0 -1 0 0 0 0 0 7 3 5 2 20 0 1 0 9 0 11 0", stat{}, false},
		{"double space", "7 (x) R 1  2 3 0 -1 0 0 0 0 0 7 3 5 2 20 0 1 0 9 0 11 0", stat{}, false},
		{"overflow", "7 (x) R 1 2 3 0 -1 0 0 0 0 0 99999999999999999999999 3 5 2 20 0 1 0 9 0 11 0", stat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got stat
			err := parseStat([]byte(tt.line), &got)
			if (err == nil) != tt.ok {
				t.Fatalf("parseStat(%q) error = %v, want ok = %v", tt.line, err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(catStat))
	f.Add([]byte("1 (a) b) c) R 1 2 3 0 -1 0 0 0 0 0 7 3 5 2 20 0 1 0 9 0 11 0"))
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	// Never panic; and a line that parses still parses the same once a
	// later kernel appends fields to it.
	f.Fuzz(func(t *testing.T, line []byte) {
		var a, b stat
		if parseStat(line, &a) != nil {
			return
		}
		longer := append(bytes.TrimRight(line, "\n"), " 42\n"...)
		if err := parseStat(longer, &b); err != nil || a != b {
			t.Fatalf("parseStat(%q) = %+v, but with a field appended: %+v, %v", line, a, b, err)
		}
	})
}

func TestParseStatm(t *testing.T) {
	tests := []struct {
		line  string
		pages uint64
		ok    bool
	}{
		{"730 455 428 5 0 89 0\n", 455, true},
		{"730 455", 455, true},
		{"730 455\n", 455, true},
		{"730", 0, false},
		{"730 x 1", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		pages, ok := parseStatm([]byte(tt.line))
		if pages != tt.pages || ok != tt.ok {
			t.Errorf("parseStatm(%q) = %d, %v; want %d, %v", tt.line, pages, ok, tt.pages, tt.ok)
		}
	}
}

func TestDirentPID(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"1\x00", 1, true},
		{"4194304\x00\x00", 4194304, true},
		{"self\x00", 0, false},
		{"\x00", 0, false},
		{"12a\x00", 0, false},
		{"99999999999\x00", 0, false},
		{"12", 0, false}, // no terminator
	}
	for _, tt := range tests {
		pid, ok := direntPID([]byte(tt.name))
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("direntPID(%q) = %d, %v; want %d, %v", tt.name, pid, ok, tt.pid, tt.ok)
		}
	}
}
