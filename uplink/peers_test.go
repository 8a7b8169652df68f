package uplink

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/testtool"
	"github.com/camgate/camgate/store"
)

// memQueue is an in-memory Queue for unit tests that do not need durability; the end-to-end
// tests use the real store.
type memQueue struct {
	mu     sync.Mutex
	next   uint64
	msgs   map[string][]store.Message
	notify map[string]chan struct{}
	acked  int
}

func newMemQueue() *memQueue {
	return &memQueue{msgs: map[string][]store.Message{}, notify: map[string]chan struct{}{}}
}

func (q *memQueue) ch(queue string) chan struct{} {
	c, ok := q.notify[queue]
	if !ok {
		c = make(chan struct{}, 1)
		q.notify[queue] = c
	}
	return c
}

func (q *memQueue) Enqueue(_ context.Context, queue string, msgs ...store.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		q.next++
		m.Seq = q.next
		m.Enqueued = time.Now()
		q.msgs[queue] = append(q.msgs[queue], m)
	}
	select {
	case q.ch(queue) <- struct{}{}:
	default:
	}
	return nil
}

func (q *memQueue) Peek(queue string, max int) ([]store.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs[queue]
	return append([]store.Message(nil), m[:min(max, len(m))]...), nil
}

func (q *memQueue) Ack(queue string, seqs ...uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	drop := map[uint64]bool{}
	for _, s := range seqs {
		drop[s] = true
	}
	var keep []store.Message
	for _, m := range q.msgs[queue] {
		if drop[m.Seq] {
			q.acked++
			continue
		}
		keep = append(keep, m)
	}
	q.msgs[queue] = keep
	return nil
}

func (q *memQueue) Notify(queue string) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ch(queue)
}

func (q *memQueue) depth(queue string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs[queue])
}

// peer finds an installed program the tests talk to (also in the sbin directories). Missing, it
// fails the test in CI, naming the Debian package, and skips it elsewhere.
func peer(t testing.TB, name, debianPackage string) string {
	t.Helper()
	return testtool.Need(t, debianPackage, name)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := testtool.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// broker is a real mosquitto on a loopback port (or, through rabbit.asBroker, only a port the
// mosquitto_sub and mosquitto_pub helpers talk to).
type broker struct {
	t    testing.TB
	port int
	m    *testtool.Mosquitto
}

// startBroker starts mosquitto with a listener on a free loopback port; extra is appended to the
// listener's section of the config (TLS files, protocol websockets).
func startBroker(t testing.TB, extra string) *broker {
	t.Helper()
	m := testtool.StartMosquitto(t, testtool.MosquittoConfig{Settings: "per_listener_settings false", Listener: extra})
	return &broker{t: t, port: m.Port, m: m}
}

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// start brings a stopped broker back on the same port.
func (b *broker) start() {
	b.t.Helper()
	if err := b.m.Start(); err != nil {
		b.t.Fatal(err)
	}
}

func (b *broker) stop() { b.m.Stop() }

// subscriber is mosquitto_sub printing "topic payload" lines.
type subscriber struct {
	*testtool.Subscriber
}

// subscribe starts mosquitto_sub on topics and waits until it is subscribed, by publishing probes
// with mosquitto_pub until one comes back.
func subscribe(t testing.TB, b *broker, extra []string, topics ...string) *subscriber {
	t.Helper()
	args := append([]string{"-q", "1", "-v", "-t", "uplinktest/probe"}, extra...)
	for _, topic := range topics {
		args = append(args, "-t", topic)
	}
	s := &subscriber{testtool.Subscribe(t, b.port, args...)}
	eventually(t, "mosquitto_sub to subscribe", 60*time.Second, func() bool {
		publish(t, b, extra, "uplinktest/probe", "probe", false)
		if slices.Contains(s.Lines(), "uplinktest/probe probe") {
			return true
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	return s
}

func (s *subscriber) snapshot() []string { return s.Lines() }

// received returns the payloads seen on topic, in arrival order.
func (s *subscriber) received(topic string) []string {
	var out []string
	for _, l := range s.snapshot() {
		if p, ok := strings.CutPrefix(l, topic+" "); ok {
			out = append(out, p)
		} else if l == topic {
			out = append(out, "")
		}
	}
	return out
}

func publish(t testing.TB, b *broker, extra []string, topic, payload string, retain bool) {
	t.Helper()
	args := append([]string{"-q", "1", "-t", topic, "-m", payload}, extra...)
	if retain {
		args = append(args, "-r")
	}
	if err := testtool.Publish(t, b.port, args...); err != nil {
		t.Log(err)
	}
}

// proxy forwards loopback TCP connections to a broker, so a test can cut them abruptly (the broker
// sees a dead socket, not a DISCONNECT) or refuse new ones for a while.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	refuse bool
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	t.Cleanup(func() { l.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// cut closes every forwarded connection at once.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) setRefuse(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = v
}
