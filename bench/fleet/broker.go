package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/camgate/camgate/internal/testtool"
)

// broker is a real mosquitto on a loopback port. It keeps retained messages and sessions on disk
// (autosaved every few seconds), as a production broker does, so that a kill and a restart lose
// what a crash loses and nothing more.
//
// CONNECTs are counted at the broker itself: mosquitto logs one "New client connected from ... as
// <client id>" line per accepted CONNECT, with the time (log_timestamp_format %s), and the bench
// reads its log.
type broker struct {
	m *testtool.Mosquitto

	mu       sync.Mutex
	connects map[int64]int // unix second -> CONNECTs accepted in it
}

func newBroker(dir string) (*broker, error) {
	bin, err := testtool.FindMosquitto()
	if err != nil {
		return nil, err
	}
	b := &broker{connects: map[int64]int{}}
	b.m, err = testtool.NewMosquitto(bin, testtool.MosquittoConfig{
		Dir:     dir,
		Persist: true,
		// No per-client queue limits: the retained reader takes every gateway's retained store
		// at once (600 MiB at 5,000 gateways), which the default max_queued_messages (1000)
		// would cut short.
		Settings: strings.Join([]string{"max_connections -1", "autosave_interval 5", "max_queued_bytes 0",
			"max_queued_messages 0",
			"sys_interval 1", "log_type notice", "log_timestamp true", "log_timestamp_format %s"}, "\n"),
		OnLog: b.logLine,
	})
	return b, err
}

func (b *broker) addr() string { return b.m.Addr() }
func (b *broker) start() error { return b.m.Start() }
func (b *broker) kill()        { b.m.Kill() }
func (b *broker) stop()        { b.m.Stop() }

func (b *broker) logLine(line string) {
	ts, rest, ok := strings.Cut(line, ": ")
	if !ok || !strings.HasPrefix(rest, "New client connected from ") || strings.Contains(rest, " as "+counterID+" ") {
		return
	}
	if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
		b.mu.Lock()
		b.connects[sec]++
		b.mu.Unlock()
	}
}

// connectsBetween returns the CONNECTs per second from second from to second to, inclusive.
func (b *broker) connectsBetween(from, to int64) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int, 0, to-from+1)
	for s := from; s <= to; s++ {
		out = append(out, b.connects[s])
	}
	return out
}

// procSample is what /proc says about one process.
type procSample struct {
	rssBytes int64
	cpuTicks int64 // utime + stime, in clock ticks (USER_HZ, 100 on Linux)
}

const userHZ = 100

func sampleProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			s.rssBytes = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
	_, after, ok := strings.Cut(string(stat), ") ")
	if !ok {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(after)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpuTicks = utime + stime
	return s, nil
}

func (b *broker) sample() (procSample, error) {
	if !b.m.Running() {
		return procSample{}, errors.New("mosquitto is not running")
	}
	return sampleProc(b.m.Pid())
}
