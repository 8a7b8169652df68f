package lan

import (
	"context"
	"io"
	"net"
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
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			l, err := Listen(ctx, "tcp", "127.0.0.1:0", p, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					_, _ = c.Write([]byte("220 hello\r\n")) // the dialer's read shows whether it came
					c.Close()
				}
			}()

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
