package lan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestListenerClosesDeniedWithoutAByte(t *testing.T) {
	tests := []struct {
		name       string
		allow      []string
		wantServed bool
	}{
		{"LAN policy serves loopback", nil, true},
		{"allow list without loopback denies it", []string{"10.0.0.0/8"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			p.uplinks = func() uplinkSet { return uplinkSet{} }
			l := listenAndGreet(t, "127.0.0.1:0", p)

			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if served := len(got) > 0; served != tt.wantServed {
				t.Errorf("served = %v (%q), want %v", served, got, tt.wantServed)
			}
			wantDenied := uint64(0)
			if !tt.wantServed {
				wantDenied = 1
			}
			if d := l.Denied(); d != wantDenied {
				t.Errorf("Denied() = %d, want %d", d, wantDenied)
			}
		})
	}
}

// addrConn is one end of a pipe that claims the addresses a real accepted socket would have.
type addrConn struct {
	net.Conn
	remote, local net.Addr
	closed        chan struct{}
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }
func (c *addrConn) LocalAddr() net.Addr  { return c.local }
func (c *addrConn) Close() error {
	close(c.closed)
	return c.Conn.Close()
}

// queueListener hands out the connections queued on it, then reports closed.
type queueListener struct{ conns chan net.Conn }

func (l queueListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l queueListener) Close() error   { return nil }
func (l queueListener) Addr() net.Addr { return tcp("192.168.1.1:1025") }

// When the interface of a connection cannot be found out, it is refused (fail closed), and the
// log says so once, not once per connection.
func TestListenerFailsClosedAndLogsOnce(t *testing.T) {
	p := gatewayPolicy(t, nil)
	p.routeOut = func(netip.Addr, netip.Addr) (int, error) { return 0, errors.New("netlink: no buffer space") }
	var logged bytes.Buffer
	ql := queueListener{conns: make(chan net.Conn, 3)}
	var refused []*addrConn
	for i := range 3 {
		ours, theirs := net.Pipe()
		defer theirs.Close()
		c := &addrConn{Conn: ours, remote: tcp(fmt.Sprintf("192.168.1.%d:5000", 50+i)), local: tcp("192.168.1.1:1025"),
			closed: make(chan struct{})}
		refused = append(refused, c)
		ql.conns <- c
	}
	close(ql.conns)
	l := Wrap(ql, p, slog.New(slog.NewTextHandler(&logged, nil)))
	if c, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept = %v, %v; want every connection refused", c, err)
	}
	for i, c := range refused {
		select {
		case <-c.closed:
		default:
			t.Errorf("connection %d not closed", i)
		}
	}
	if d := l.Denied(); d != 3 {
		t.Errorf("Denied() = %d, want 3", d)
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != 1 || !strings.Contains(logged.String(), "no buffer space") {
		t.Errorf("%d warnings, want 1 naming the cause:\n%s", n, logged.String())
	}
}

// listenAndGreet listens on addr under p and greets every connection it lets through (then
// closes it), so that a client's read shows whether it was served.
func listenAndGreet(t *testing.T, addr string, p *Policy) *Listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Listen(ctx, "tcp", addr, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("220 hello\r\n"))
			c.Close()
		}
	}()
	return l
}
