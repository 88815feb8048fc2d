package procstat

import (
	"encoding/binary"
	"strconv"
	"unsafe"

	"github.com/shirou/gopsutil/v4/cpu"
	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of the CPU and start times in
// /proc/<pid>/stat: sysconf(_SC_CLK_TCK) as gopsutil reads it, which is 100
// on every mainstream Linux architecture (the kernel ABI fixes it there).
var clockTicks = func() float64 {
	if cpu.ClocksPerSec > 0 {
		return cpu.ClocksPerSec
	}
	return 100
}()

// pageSize converts the rss field (pages) to bytes.
var pageSize = uint64(unix.Getpagesize())

// proc is one process seen by a scan.
type proc struct {
	pid int
	stat
}

// none marks the end of a linked list of process indexes.
const none = -1

// scanner reads /proc once per scan into buffers it keeps for the next one,
// so a scan of a few thousand processes allocates almost nothing besides
// the results it hands out.
type scanner struct {
	dirents []byte // getdents(2) buffer
	line    []byte // one /proc/<pid>/stat
	path    []byte // "<pid>/stat\x00"

	procs []proc
	index map[int]int // pid -> procs index

	// Linked lists over procs indexes: a process's children, and the
	// members of a requested root's process group and session.
	firstChild, nextSibling []int
	groupHead, sessionHead  []int // per requested root
	nextInGroup, nextInSess []int

	wanted map[int]int // requested root pid -> its index in roots
	seen   []int       // per proc: 1 + index of the last root it was counted for
	todo   []int       // work list of a tree walk
}

// scan measures every root that exists and calls found for each.
func (sc *scanner) scan(roots []Root, found func(measured)) {
	if sc.dirents == nil {
		sc.dirents = make([]byte, 32<<10)
		sc.line = make([]byte, 4<<10)
		sc.index = make(map[int]int)
		sc.wanted = make(map[int]int)
	}
	dir, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // no /proc: nothing exists as far as we can tell
	}
	defer unix.Close(dir)
	if err := sc.readProc(dir); err != nil {
		return
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) // the clock start times count from
	sinceBoot := float64(ts.Sec) + float64(ts.Nsec)/1e9
	sc.link(roots)

	var pids []int // shared backing array of every result's PIDs
	tickMicros := 1e6 / clockTicks
	for ri, r := range roots {
		if wi, ok := sc.wanted[r.PID]; !ok || wi != ri { // pid <= 0, or a duplicate: the last counts
			continue
		}
		root, ok := sc.index[r.PID]
		if !ok || (r.StartTime != 0 && sc.procs[root].start != r.StartTime) {
			continue
		}
		first := len(pids)
		var rss, user, system uint64
		mark := ri + 1
		sc.todo = append(sc.todo[:0], root)
		for i := sc.groupHead[ri]; i != none; i = sc.nextInGroup[i] {
			sc.todo = append(sc.todo, i)
		}
		for i := sc.sessionHead[ri]; i != none; i = sc.nextInSess[i] {
			sc.todo = append(sc.todo, i)
		}
		// The root is visited first so it leads PIDs; the order of the rest is
		// unspecified.
		for k := 0; k < len(sc.todo); k++ {
			i := sc.todo[k]
			if sc.seen[i] == mark {
				continue
			}
			sc.seen[i] = mark
			p := &sc.procs[i]
			pids = append(pids, p.pid)
			rss += sc.residentPages(dir, p)
			user += p.utime + p.cutime
			system += p.stime + p.cstime
			for c := sc.firstChild[i]; c != none; c = sc.nextSibling[c] {
				sc.todo = append(sc.todo, c)
			}
		}
		start := sc.procs[root].start
		found(measured{
			pid:    r.PID,
			start:  start,
			pids:   pids[first:len(pids):len(pids)],
			rss:    rss * pageSize,
			user:   float64(user) * tickMicros,
			system: float64(system) * tickMicros,
			uptime: max(sinceBoot-float64(start)/clockTicks, 0),
		})
	}
}

// readProc fills sc.procs with every process dir (/proc) lists.
func (sc *scanner) readProc(dir int) error {
	sc.procs = sc.procs[:0]
	for {
		n, err := unix.Getdents(dir, sc.dirents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := sc.dirents[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			typ, name := b[18], b[19:reclen]
			b = b[reclen:]
			if typ != unix.DT_DIR && typ != unix.DT_UNKNOWN {
				continue
			}
			pid, ok := direntPID(name)
			if !ok {
				continue
			}
			var p proc
			if sc.readStat(dir, pid, &p.stat) != nil {
				continue // it ended since getdents, or we may not look
			}
			p.pid = pid
			sc.procs = append(sc.procs, p)
		}
	}
}

// direntPID parses a NUL-terminated directory name that is all digits.
func direntPID(name []byte) (int, bool) {
	v := 0
	for i, c := range name {
		if c == 0 {
			return v, i > 0
		}
		if c < '0' || c > '9' || v > 1<<31/10 {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return 0, false
}

// readStat reads and parses <dir>/<pid>/stat without allocating.
func (sc *scanner) readStat(dir, pid int, st *stat) error {
	n, err := sc.read(dir, pid, "/stat\x00")
	if err != nil {
		return err
	}
	return parseStat(sc.line[:n], st)
}

// residentPages is p's resident set from <dir>/<pid>/statm. The rss field
// of stat will not do: since Linux 6.2 it reads the per-CPU RSS counters
// without summing them, which can be hundreds of KiB off for each process,
// while statm (like VmRSS in status) sums them exactly. If statm cannot be
// read (the process just ended), stat's figure is better than nothing.
func (sc *scanner) residentPages(dir int, p *proc) uint64 {
	n, err := sc.read(dir, p.pid, "/statm\x00")
	if err != nil {
		return p.rss
	}
	if pages, ok := parseStatm(sc.line[:n]); ok {
		return pages
	}
	return p.rss
}

// read reads <dir>/<pid><file> (file begins with '/' and ends with a NUL)
// into sc.line without allocating.
func (sc *scanner) read(dir, pid int, file string) (int, error) {
	sc.path = strconv.AppendInt(sc.path[:0], int64(pid), 10)
	sc.path = append(sc.path, file...)
	fd, err := openat(dir, sc.path)
	if err != nil {
		return 0, err
	}
	n, err := readFull(fd, sc.line)
	unix.Close(fd)
	return n, err
}

// openat is unix.Openat for a NUL-terminated path held in a reused buffer:
// unix.Openat would allocate a copy of the path on every call.
func openat(dir int, path []byte) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dir), uintptr(unsafe.Pointer(&path[0])),
			uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		default:
			return -1, errno
		}
	}
}

// readFull reads a /proc file that fits buf. The stat and statm files of
// proc(5) are made whole when first read (seq_file's single_open), and a
// read hands out as much of them as fits: a read shorter than asked has
// reached the end, so it is not followed by one more to see EOF (a
// quarter of the system calls of a scan).
func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if m == 0 {
			break
		}
		n += m
		if n < len(buf) {
			break // short: the end
		}
	}
	if n == 0 || n == len(buf) {
		return 0, errStat // gone (a dead process reads empty) or too long
	}
	return n, nil
}

// link indexes sc.procs by pid, threads the children of every process, and
// the members of each requested root's process group and session.
func (sc *scanner) link(roots []Root) {
	n := len(sc.procs)
	clear(sc.index)
	for i := range sc.procs {
		sc.index[sc.procs[i].pid] = i
	}
	clear(sc.wanted)
	for ri, r := range roots {
		if r.PID > 0 {
			sc.wanted[r.PID] = ri
		}
	}
	sc.firstChild = fill(sc.firstChild, n, none)
	sc.nextSibling = fill(sc.nextSibling, n, none)
	sc.nextInGroup = fill(sc.nextInGroup, n, none)
	sc.nextInSess = fill(sc.nextInSess, n, none)
	sc.seen = fill(sc.seen, n, 0)
	sc.groupHead = fill(sc.groupHead, len(roots), none)
	sc.sessionHead = fill(sc.sessionHead, len(roots), none)
	for i := range sc.procs {
		p := &sc.procs[i]
		if parent, ok := sc.index[p.ppid]; ok && parent != i {
			sc.nextSibling[i] = sc.firstChild[parent]
			sc.firstChild[parent] = i
		}
		if ri, ok := sc.wanted[p.pgid]; ok && p.pgid != p.pid {
			sc.nextInGroup[i] = sc.groupHead[ri]
			sc.groupHead[ri] = i
		}
		if ri, ok := sc.wanted[p.sid]; ok && p.sid != p.pid && p.sid != p.pgid {
			sc.nextInSess[i] = sc.sessionHead[ri]
			sc.sessionHead[ri] = i
		}
	}
}

// fill returns s resized to n with every element set to v.
func fill(s []int, n, v int) []int {
	if cap(s) < n {
		s = make([]int, n)
	}
	s = s[:n]
	for i := range s {
		s[i] = v
	}
	return s
}
