package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/camgate/camgate/internal/testtool"

	"github.com/camgate/camgate/internal/sim"
)

// freePort is a loopback TCP port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mosquitto is a real broker on a loopback port. It logs every connection, and publishes its
// $SYS counters every second, so a test can count the clients at the broker.
type mosquitto struct {
	*testtool.Mosquitto
}

func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	return &mosquitto{testtool.StartMosquitto(t, testtool.MosquittoConfig{
		Settings: "sys_interval 1\nlog_type all\nconnection_messages true",
	})}
}

func (m *mosquitto) addr() string    { return m.Addr() }
func (m *mosquitto) url() string     { return m.URL() }
func (m *mosquitto) logText() string { return m.Log() }

// subscribe follows topic at the broker with a client of the test's own, until the test ends.
func (m *mosquitto) subscribe(t testing.TB, clientID, topic string, got func(paho.Message)) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(strings.Replace(m.url(), "mqtt://", "tcp://", 1)).
		SetClientID(clientID).SetCleanSession(true).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test MQTT client: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) { got(msg) }); !tok.WaitTimeout(5*time.Second) ||
		tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
}

// daemon is an Agent running in this process on a config file, as `camgate run -c` runs it.
type daemon struct {
	a      *Agent
	path   string
	dir    string
	reload chan struct{}
	cancel context.CancelFunc
	done   chan error
	logs   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon writes cfg (DATA_DIR replaced) and runs an Agent on it until the test ends.
func startDaemon(t testing.TB, cfg string) *daemon {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), cfg, nil)
}

// startDaemonIn is startDaemon on dir, a restart when an earlier daemon used it. setup, when
// not nil, sees the Agent before it runs.
func startDaemonIn(t testing.TB, dir, cfg string, setup func(*Agent)) *daemon {
	t.Helper()
	d := &daemon{dir: dir, reload: make(chan struct{}, 1), done: make(chan error, 1), logs: &lockedBuffer{}}
	d.path = filepath.Join(d.dir, "camgate.yaml")
	d.writeConfig(t, cfg)
	l, err := LoadConfig(d.path, true, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	log := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d.a = New(l, Options{Logger: log, Reload: d.reload, Version: "test", Getenv: func(string) string { return "" },
		Ready: func(*Agent) { close(ready) }})
	if setup != nil {
		setup(d.a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- d.a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-d.done:
		t.Fatalf("agent ended at start: %v\n%s", err, d.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("agent not ready in 20 s\n%s", d.logs.String())
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) writeConfig(t testing.TB, cfg string) {
	t.Helper()
	cfg = strings.ReplaceAll(cfg, "DATA_DIR", d.dir)
	tmp := d.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		t.Fatal(err)
	}
}

// stop is SIGTERM: it waits for Run to return.
func (d *daemon) stop(t testing.TB) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("agent did not stop within 20 s")
	}
}

// page is a logged-in client of the pairing page's JSON API.
type page struct {
	t    testing.TB
	base string
	csrf string
	hc   *http.Client
}

func loginPage(t testing.TB, d *daemon) *page {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	p := &page{t: t, base: "http://" + d.a.WebAddr(), hc: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	code, err := PairCode(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	if st, err := p.do("POST", "/api/login", map[string]string{"code": code}, &out); err != nil || st != 200 {
		t.Fatalf("login: %d %v", st, err)
	}
	p.csrf = out.CSRF
	t.Cleanup(p.hc.CloseIdleConnections)
	return p
}

// do sends one API request and decodes the answer into out (may be nil).
func (p *page) do(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if p.csrf != "" {
		req.Header.Set("X-CSRF-Token", p.csrf)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// mqttUp tells whether the agent's MQTT client is connected now.
func (d *daemon) mqttUp() bool {
	l := d.a.link.Load()
	return l != nil && l.mqtt != nil && l.mqtt.Connected()
}

// raw sends one API request and returns the status and body whatever they are.
func (p *page) raw(method, path string, body any) (int, []byte) {
	p.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		p.t.Fatal(err)
	}
	req, err := http.NewRequest(method, p.base+path, bytes.NewReader(b))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", p.csrf)
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// startMediaServer runs a Flussonic stand-in on loopback until ctx ends; publish is the
// flussonic.publish value that sends each camera to it under its stream name.
func startMediaServer(ctx context.Context, t testing.TB) (ms *sim.MediaServer, publish string) {
	t.Helper()
	ms, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ms.Run(ctx) }() // ends with ctx
	return ms, strings.TrimSuffix(ms.URL(), "/") + "/{stream_name}"
}
