package testtool

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// ServeHTTP serves h on addr (e.g. "127.0.0.2:0", a second loopback host for redirect and
// spoofing tests) until the test ends, and returns the host:port it listens on.
func ServeHTTP(t testing.TB, addr string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return l.Addr().String()
}
