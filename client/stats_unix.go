//go:build unix

package client

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

func readCPU() cpuTimes {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return cpuTimes{}
	}
	return cpuTimes{
		user:   int64(ru.Utime.Sec)*1e6 + int64(ru.Utime.Usec),
		system: int64(ru.Stime.Sec)*1e6 + int64(ru.Stime.Usec),
	}
}

// readRSS returns the resident set size in bytes: the current one from
// /proc/self/statm where there is one, else the peak from getrusage.
func readRSS() int64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := bytes.Fields(b); len(f) >= 2 {
			if pages, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss) // bytes there
	}
	return int64(ru.Maxrss) * 1024 // KiB elsewhere
}
