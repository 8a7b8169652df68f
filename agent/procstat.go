package agent

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// rssBytes reads the resident set size from /proc (Linux, which every gateway runs); 0 elsewhere.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize())
}

// cpuMeter turns the process's CPU ticks into a percentage of one core since the last reading.
type cpuMeter struct {
	ticks int64
	at    time.Time
}

// clockTicks is USER_HZ, 100 on every Linux port camgate targets.
const clockTicks = 100

func newCPUMeter() *cpuMeter { return &cpuMeter{ticks: cpuTicks(), at: time.Now()} }

func (m *cpuMeter) percent() float64 {
	now, t := time.Now(), cpuTicks()
	dt := now.Sub(m.at).Seconds()
	pct := 0.0
	if dt > 0 && t >= m.ticks {
		pct = float64(t-m.ticks) / clockTicks / dt * 100
	}
	m.ticks, m.at = t, now
	return float64(int(pct*10)) / 10
}

func cpuTicks() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stime, _ := strconv.ParseInt(string(f[12]), 10, 64)
	return utime + stime
}
