//go:build !linux

package procstat

import (
	"fmt"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// scanner measures each tree through gopsutil, one process at a time. It is
// correct but far slower than the Linux scan (Children lists every process
// of the host on each call), and it follows parent links only: process
// groups and sessions are not consulted. StartTime here is gopsutil's
// CreateTime, in milliseconds since the Unix epoch.
type scanner struct{}

func (scanner) scan(roots []Root, found func(measured)) {
	seen := make(map[int]bool, len(roots))
	for _, r := range roots {
		if r.PID <= 0 || seen[r.PID] {
			continue
		}
		seen[r.PID] = true
		root, err := process.NewProcess(int32(r.PID))
		if err != nil {
			continue
		}
		created, err := root.CreateTime()
		if err != nil || (r.StartTime != 0 && uint64(created) != r.StartTime) {
			continue
		}
		m := measured{pid: r.PID, start: uint64(created)}
		m.uptime = max(time.Since(time.UnixMilli(created)).Seconds(), 0)
		walked := map[int32]bool{}
		var walk func(p *process.Process)
		walk = func(p *process.Process) {
			if walked[p.Pid] {
				return
			}
			walked[p.Pid] = true
			m.pids = append(m.pids, int(p.Pid))
			if mem, err := p.MemoryInfo(); err == nil {
				m.rss += mem.RSS
			}
			if t, err := p.Times(); err == nil {
				m.user += t.User * 1e6
				m.system += t.System * 1e6
			}
			children, _ := p.Children()
			for _, c := range children {
				walk(c)
			}
		}
		walk(root)
		found(m)
	}
}

// StartTime returns when pid started, as gopsutil's CreateTime
// (milliseconds since the Unix epoch); pass it back in Root.StartTime.
func StartTime(pid int) (uint64, error) {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read start time of pid %d: %w", pid, err)
	}
	t, err := p.CreateTime()
	if err != nil {
		return 0, fmt.Errorf("cannot read start time of pid %d: %w", pid, err)
	}
	return uint64(t), nil
}

// Info is where a process stands among the others (see the Linux build).
type Info struct {
	PPID, PGID, SID int
	Start           uint64
}

// Lookup needs /proc: elsewhere it knows the parent and start time only,
// and no process group (PGID and SID are 0).
func Lookup(pid int) (Info, error) {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return Info{}, fmt.Errorf("cannot look up pid %d: %w", pid, err)
	}
	ppid, err := p.Ppid()
	if err != nil {
		return Info{}, fmt.Errorf("cannot look up pid %d: %w", pid, err)
	}
	start, err := StartTime(pid)
	if err != nil {
		return Info{}, err
	}
	return Info{PPID: int(ppid), Start: start}, nil
}

// StartedAt converts a start time (milliseconds since the epoch here) to
// the wall clock.
func StartedAt(start uint64) time.Time { return time.UnixMilli(int64(start)) }
