package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startServer runs a server on a loopback port until the test ends.
func startServer(t *testing.T, allow []string) *Server {
	t.Helper()
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Allow: allow, PairCode: testCode, Backend: newFakeBackend(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after the context ended, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after the context ended")
		}
	})
	return s
}

func TestLANPolicyServesTheLAN(t *testing.T) {
	s := startServer(t, nil)
	cl := &http.Client{Timeout: 30 * time.Second}
	res, err := cl.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", res.StatusCode, body)
	}
}

// A client outside web.allow is closed before it gets a single byte, and counted; loopback
// stands in for the outsider by leaving it out of the allow list.
func TestLANPolicyClosesOthersWithoutAByte(t *testing.T) {
	s := startServer(t, []string{"192.0.2.0/24"})
	c, err := net.DialTimeout("tcp", s.Addr().String(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server may close before it reads the request: the read below is what counts.
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection left open: want it closed at once")
	}
	if len(got) != 0 {
		t.Errorf("denied client got %q", got)
	}
	if n := s.DeniedConnections(); n != 1 {
		t.Errorf("DeniedConnections() = %d, want 1", n)
	}
	// The count shows on /metrics (for a client that is allowed: through the handler).
	w := newClient(t, s).do("GET", "/metrics", nil)
	if !strings.Contains(w.Body.String(), "camgate_web_denied_connections_total 1\n") {
		t.Errorf("metrics:\n%s", w.Body.String())
	}
}

func TestNewServerRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no backend", Config{PairCode: testCode}},
		{"no setup code", Config{Backend: newFakeBackend(), PairCode: " - "}},
		{"bad allow", Config{Backend: newFakeBackend(), PairCode: testCode, Allow: []string{"10.0.0.0/33"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewServer(tt.cfg); err == nil {
				t.Error("no error")
			}
		})
	}
}
