package testtool

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MosquittoConfig says how to run a mosquitto. The zero value is an anonymous broker on a free
// loopback port that keeps nothing across restarts.
type MosquittoConfig struct {
	// Port is the loopback port to listen on; 0 picks a free one.
	Port int
	// Dir holds mosquitto.conf and, with Persist, the broker's database. StartMosquitto uses a
	// temporary directory when it is empty; NewMosquitto needs it.
	Dir string
	// Persist keeps retained messages and sessions in Dir across restarts, as a production
	// broker does.
	Persist bool
	// Settings are more general config lines (log_type, sys_interval, autosave_interval).
	Settings string
	// Listener are options of the one listener (certfile, protocol websockets).
	Listener string
	// OnLog, if set, sees every line mosquitto logs, in order.
	OnLog func(line string)
}

// Mosquitto is a real MQTT broker (Debian's mosquitto) on a loopback port. It can be stopped,
// killed and started again on the same port and directory, to make a broker outage.
type Mosquitto struct {
	Port int
	Dir  string

	bin, conf string
	onLog     func(string)
	proc      *Process
}

// FindMosquitto returns the broker's path; Debian installs it in /usr/sbin, often not on $PATH.
func FindMosquitto() (string, error) {
	for _, name := range []string{"mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto not found: install the Debian package mosquitto")
}

// NewMosquitto writes the broker's config into c.Dir; Start runs it.
func NewMosquitto(bin string, c MosquittoConfig) (*Mosquitto, error) {
	if c.Dir == "" {
		return nil, errors.New("mosquitto: no directory for its config")
	}
	if c.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		c.Port = port
	}
	m := &Mosquitto{Port: c.Port, Dir: c.Dir, bin: bin, conf: filepath.Join(c.Dir, "mosquitto.conf"), onLog: c.OnLog}
	var conf strings.Builder
	if os.Geteuid() == 0 {
		// Started as root, mosquitto drops to the "mosquitto" user, who can neither read a test's
		// private directory nor write its database there.
		conf.WriteString("user root\n")
	}
	// max_queued_messages 0: no limit, so that a subscriber's queue across an outage is not cut
	// at mosquitto's default of 1000 messages.
	conf.WriteString("allow_anonymous true\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n")
	if c.Persist {
		fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\n", c.Dir)
	} else {
		conf.WriteString("persistence false\n")
	}
	conf.WriteString(strings.TrimSpace(c.Settings) + "\n")
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n%s\n", c.Port, strings.TrimSpace(c.Listener))
	if err := os.WriteFile(m.conf, []byte(conf.String()), 0o600); err != nil {
		return nil, fmt.Errorf("mosquitto config: %w", err)
	}
	return m, nil
}

// Start runs the broker and waits, up to a minute (the machine may be loaded), until it listens.
func (m *Mosquitto) Start() error {
	p, err := StartProcess(exec.Command(m.bin, "-c", m.conf), m.onLog)
	if err != nil {
		return err
	}
	m.proc = p
	if err := p.WaitListening(m.Addr(), time.Minute); err != nil {
		p.Kill()
		return err
	}
	return nil
}

// Stop ends the broker cleanly (SIGTERM; it saves its database), killing it after 20 s.
func (m *Mosquitto) Stop() {
	if m.Running() {
		m.proc.Stop(syscall.SIGTERM, 20*time.Second)
	}
}

// Kill ends the broker as a crash would: SIGKILL, no goodbye to its clients.
func (m *Mosquitto) Kill() {
	if m.Running() {
		m.proc.Kill()
	}
}

// Running says whether the broker was started and has not exited.
func (m *Mosquitto) Running() bool {
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.Done():
		return false
	default:
		return true
	}
}

// Pid is the running broker's process id, for reading /proc.
func (m *Mosquitto) Pid() int { return m.proc.Pid() }

// Log returns the last lines the broker logged in its latest run.
func (m *Mosquitto) Log() string {
	if m.proc == nil {
		return ""
	}
	return m.proc.Log()
}

// Addr is the broker's host:port.
func (m *Mosquitto) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)) }

// URL is the broker's address as camgate's mqtt.url takes it.
func (m *Mosquitto) URL() string { return "mqtt://" + m.Addr() }

// StartMosquitto runs a broker for the rest of the test (Need decides when mosquitto is missing).
func StartMosquitto(t testing.TB, c MosquittoConfig) *Mosquitto {
	t.Helper()
	bin := Need(t, "mosquitto", "mosquitto")
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	m, err := NewMosquitto(bin, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Subscriber is a real mosquitto_sub, collecting the lines it prints.
type Subscriber struct {
	mu    sync.Mutex
	lines []string
}

// Subscribe runs mosquitto_sub against the broker on the loopback port, with args (topics,
// output format, client id), until the test ends. It does not wait for the subscription to be
// made: a test that must not miss a message proves it with a probe (see the uplink tests).
func Subscribe(t testing.TB, port int, args ...string) *Subscriber {
	t.Helper()
	bin := Need(t, "mosquitto-clients", "mosquitto_sub")
	cmd := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	s := &Subscriber{}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-read; _ = cmd.Wait() })
	return s
}

// Lines returns what mosquitto_sub printed so far, one entry a line.
func (s *Subscriber) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Publish runs mosquitto_pub against the broker on the loopback port with args (topic,
// message, QoS, retain) and returns its error with what it printed.
func Publish(t testing.TB, port int, args ...string) error {
	t.Helper()
	bin := Need(t, "mosquitto-clients", "mosquitto_pub")
	args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub: %w: %s", err, out)
	}
	return nil
}
