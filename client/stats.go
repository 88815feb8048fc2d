package client

import (
	"encoding/json"
	"math"
	"runtime"
	"time"

	"github.com/corral-run/corral/client/wire"
)

// processStart approximates the process's start time: package
// initialisation runs before main.
var processStart = time.Now()

// cpuTimes is CPU time used by the process, in microseconds.
type cpuTimes struct{ user, system int64 }

// statsSampler measures the process's own resource use, like the original
// ProcessClient's process.cpuUsage/memoryUsage/uptime. Not safe for
// concurrent use: only the supervisor samples.
type statsSampler struct {
	lastCPU cpuTimes
	lastAt  time.Time
}

func newStatsSampler() statsSampler {
	return statsSampler{lastCPU: readCPU(), lastAt: time.Now()}
}

// sample returns the CPU used since the previous sample (or since the
// client was made), memory in bytes and uptime in seconds.
func (s *statsSampler) sample() wire.Stats {
	now, cpu := time.Now(), readCPU()
	user, system := cpu.user-s.lastCPU.user, cpu.system-s.lastCPU.system
	elapsed := now.Sub(s.lastAt).Microseconds()
	s.lastCPU, s.lastAt = cpu, now
	var percent float64
	if elapsed > 0 {
		percent = math.Round(float64(user+system)/float64(elapsed)*100*100) / 100
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return wire.Stats{
		CPU: wire.CPUStats{User: float64(user), System: float64(system), Percent: percent},
		Memory: wire.MemoryStats{
			RSS:       float64(readRSS()),
			HeapTotal: float64(ms.HeapSys),
			HeapUsed:  float64(ms.HeapAlloc),
		},
		Uptime: math.Round(now.Sub(processStart).Seconds()*1000) / 1000,
	}
}

// sendStats queues a stats line on s.
func (c *Client) sendStats(s *session) {
	st := c.stats.sample()
	b, err := json.Marshal(st)
	if err != nil { // cannot happen: wire.Stats holds only numbers
		c.log.Error("cannot encode stats", "process", c.cfg.ProcessID, "err", err)
		return
	}
	field := make([]byte, 0, len(b)+10)
	field = append(append(field, `,"stats":`...), b...)
	c.send(s, wire.TypeStats, field)
}
