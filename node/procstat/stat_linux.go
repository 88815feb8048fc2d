package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// stat is what the package needs from one /proc/<pid>/stat line (proc(5)).
type stat struct {
	ppid, pgid, sid int
	utime, stime    uint64 // clock ticks
	cutime, cstime  uint64 // clock ticks, of reaped children
	start           uint64 // clock ticks after boot
	rss             uint64 // pages; approximate, see residentPages
}

// errStat says a stat line could not be parsed.
var errStat = errors.New("malformed /proc stat line")

// parseStat reads line, the content of /proc/<pid>/stat. The command name
// (field 2) is chosen by the process and may hold spaces and parentheses,
// so the fields are counted from the last ')'.
func parseStat(line []byte, st *stat) error {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 || i+2 > len(line) {
		return errStat
	}
	rest := bytes.TrimRight(line[i+1:], "\n")
	*st = stat{}
	// Fields are numbered from 1 as in proc(5); rest starts before field 3.
	const last = 24 // rss
	for n := 3; n <= last; n++ {
		if len(rest) == 0 || rest[0] != ' ' {
			return errStat
		}
		rest = rest[1:]
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
			if n != last {
				return errStat
			}
		}
		f := rest[:end]
		rest = rest[end:]
		var ok bool
		switch n {
		case 4:
			st.ppid, ok = atoi(f)
		case 5:
			st.pgid, ok = atoi(f)
		case 6:
			st.sid, ok = atoi(f)
		case 14:
			st.utime, ok = atou(f)
		case 15:
			st.stime, ok = atou(f)
		case 16:
			st.cutime, ok = atou(f) // a signed long in the kernel; never negative
		case 17:
			st.cstime, ok = atou(f)
		case 22:
			st.start, ok = atou(f)
		case 24:
			st.rss, ok = atou(f)
		default:
			ok = len(f) > 0
		}
		if !ok {
			return errStat
		}
	}
	return nil
}

// parseStatm returns the resident pages, the second field of
// /proc/<pid>/statm.
func parseStatm(line []byte) (uint64, bool) {
	_, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return 0, false
	}
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	return atou(bytes.TrimRight(rest, "\n"))
}

// atou parses a decimal without allocating; a leading '-' reads as 0 (the
// kernel prints some unsigned counters through signed longs).
func atou(b []byte) (uint64, bool) {
	if len(b) > 1 && b[0] == '-' {
		_, ok := atou(b[1:])
		return 0, ok
	}
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// atoi parses a non-negative decimal that fits a pid.
func atoi(b []byte) (int, bool) {
	if len(b) > 0 && b[0] == '-' {
		return 0, false
	}
	v, ok := atou(b)
	if !ok || v > 1<<31-1 {
		return 0, false
	}
	return int(v), true
}

// StartTime returns when pid started, in clock ticks since boot (field 22
// of /proc/<pid>/stat). Together with the pid it names a process for good:
// the node persists it so that it never re-adopts a recycled pid, and passes
// it back in Root.StartTime.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cannot read start time of pid %d: %w", pid, err)
	}
	var st stat
	if err := parseStat(b, &st); err != nil {
		return 0, fmt.Errorf("cannot read start time of pid %d: %w", pid, err)
	}
	return st.start, nil
}

// Info is where a process stands among the others: its parent, its process
// group and session, and its start time (as StartTime).
type Info struct {
	PPID, PGID, SID int
	Start           uint64
}

// Lookup reads what Info says of pid from /proc/<pid>/stat.
func Lookup(pid int) (Info, error) {
	var buf [512]byte
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Info{}, fmt.Errorf("cannot look up pid %d: %w", pid, err)
	}
	n, err := f.Read(buf[:])
	f.Close()
	if err != nil {
		return Info{}, fmt.Errorf("cannot look up pid %d: %w", pid, err)
	}
	var st stat
	if err := parseStat(buf[:n], &st); err != nil {
		return Info{}, fmt.Errorf("cannot look up pid %d: %w", pid, err)
	}
	return Info{PPID: st.ppid, PGID: st.pgid, SID: st.sid, Start: st.start}, nil
}

// StartedAt converts a start time (as StartTime returns it) to the wall
// clock.
func StartedAt(start uint64) time.Time {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	now := time.Now()
	sinceBoot := time.Duration(ts.Sec)*time.Second + time.Duration(ts.Nsec)
	return now.Add(-sinceBoot + time.Duration(float64(start)/clockTicks*float64(time.Second)))
}
