package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// broker is a real mosquitto on a loopback port. It keeps retained messages and sessions on disk
// (autosaved every few seconds), as a production broker does, so that a kill and a restart lose
// what a crash loses and nothing more.
//
// CONNECTs are counted at the broker itself: mosquitto logs one "New client connected from ... as
// <client id>" line per accepted CONNECT, with the time (log_timestamp_format %s), and the bench
// reads its stderr.
type broker struct {
	bin, dir, conf string
	port           int

	mu       sync.Mutex
	connects map[int64]int // unix second -> CONNECTs accepted in it
	lastLogs []string      // the last error lines, for a failure message

	cmd  *exec.Cmd
	done chan struct{}
}

func newBroker(dir string) (*broker, error) {
	bin, err := lookPath("mosquitto", "/usr/sbin/mosquitto")
	if err != nil {
		return nil, errors.New("mosquitto not found: install the Debian package mosquitto")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &broker{bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"), port: port, connects: map[int64]int{}}
	// The persistence directory must be writable by the user mosquitto drops to when started as root.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
max_connections -1
persistence true
persistence_location %s/
autosave_interval 5
max_queued_messages 0
max_queued_bytes 0
sys_interval 1
log_dest stderr
log_type error
log_type warning
log_type notice
log_timestamp true
log_timestamp_format %%s
`, port, dir)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

func (b *broker) start() error {
	cmd := exec.Command(b.bin, "-c", b.conf)
	errs, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	logDone := make(chan struct{})
	go func() { b.readLog(errs); close(logDone) }()
	go func(done chan struct{}) { <-logDone; _ = cmd.Wait(); close(done) }(b.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-b.done:
			return fmt.Errorf("mosquitto exited: %s", b.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", b.addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto did not listen on %s within a minute", b.addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends mosquitto as a crash would: SIGKILL, no goodbye to the clients.
func (b *broker) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	b.cmd = nil
}

// stop ends mosquitto cleanly at the end of the bench.
func (b *broker) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		b.kill()
	}
	b.cmd = nil
}

func (b *broker) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		b.mu.Lock()
		if strings.HasPrefix(rest, "New client connected from ") && !strings.Contains(rest, " as "+counterID+" ") {
			if sec, err := strconv.ParseInt(ts, 10, 64); err == nil {
				b.connects[sec]++
			}
		} else if strings.HasPrefix(rest, "Error") || strings.HasPrefix(rest, "Warning") {
			b.lastLogs = append(b.lastLogs, line)
			if len(b.lastLogs) > 20 {
				b.lastLogs = b.lastLogs[1:]
			}
		}
		b.mu.Unlock()
	}
}

func (b *broker) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lastLogs, "\n")
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
	if b.cmd == nil {
		return procSample{}, errors.New("mosquitto is not running")
	}
	return sampleProc(b.cmd.Process.Pid)
}

func lookPath(names ...string) (string, error) {
	var err error
	for _, n := range names {
		var p string
		if p, err = exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
