package rtsp

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// badCamera is a loopback TCP server that misbehaves in one way on every connection.
type badCamera struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns int
}

func startBadCamera(t *testing.T, serve func(c net.Conn, r *bufio.Reader)) *badCamera {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &badCamera{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *badCamera) url() string { return "rtsp://" + b.ln.Addr().String() + "/cam" }

func (b *badCamera) connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

// readRequest reads one RTSP request head and returns its method and CSeq.
func readRequest(r *bufio.Reader) (method, cseq string, ok bool) {
	for first := true; ; first = false {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", "", false
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return method, cseq, true
		}
		if first {
			method, _, _ = strings.Cut(line, " ")
		} else if k, v, found := strings.Cut(line, ":"); found && strings.EqualFold(k, "CSeq") {
			cseq = strings.TrimSpace(v)
		}
	}
}

// answerRequests answers OPTIONS normally and DESCRIBE with describe(cseq).
func answerRequests(describe func(cseq string) string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, r *bufio.Reader) {
		for {
			method, cseq, ok := readRequest(r)
			if !ok {
				return
			}
			switch method {
			case "OPTIONS":
				fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nPublic: DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n", cseq)
			case "DESCRIBE":
				fmt.Fprint(c, describe(cseq))
			default:
				fmt.Fprintf(c, "RTSP/1.0 405 Method Not Allowed\r\nCSeq: %s\r\n\r\n", cseq)
			}
		}
	}
}

func TestBadPeers(t *testing.T) {
	tests := []struct {
		name   string
		camera func(net.Conn, *bufio.Reader) // nil: a working ffmpeg camera
		refuse base.StatusCode               // upstream answer to ANNOUNCE
		creds  bool
		// authRetry shortens the backoff after a refused password, so that retries come fast
		// enough to show that nothing accumulates.
		authRetry *authBackoff
		wantErr   string
	}{
		{
			name: "broken SDP",
			camera: answerRequests(func(cseq string) string {
				body := "v=0\r\nm=video banana RTP/AVP 96\r\n\x00\xff"
				return fmt.Sprintf("RTSP/1.0 200 OK\r\nCSeq: %s\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
					cseq, len(body), body)
			}),
			wantErr: "camera: DESCRIBE: ",
		},
		{
			name:      "401 loop",
			creds:     true,
			authRetry: &authBackoff{fast: 100 * time.Millisecond, slow: 300 * time.Millisecond, fastTries: 3},
			camera: answerRequests(func(cseq string) string {
				return "RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq +
					"\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"" + cseq + "abc\"\r\n\r\n"
			}),
			wantErr: `camera: DESCRIBE: password refused for user "admin" (401 Unauthorized)`,
		},
		{
			name: "garbage bytes",
			camera: func(c net.Conn, _ *bufio.Reader) {
				for range 64 {
					if _, err := c.Write([]byte("\x00\xffRTSP/9 garbage \x1b[31m\n\r$$\x00\x01")); err != nil {
						return
					}
				}
			},
			wantErr: "camera: ",
		},
		{
			name:    "upstream refuses ANNOUNCE",
			refuse:  base.StatusForbidden,
			wantErr: "upstream: ANNOUNCE refused: 403 Forbidden",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newTestServer(t)
			up.refuse = tc.refuse
			cfg := RelayConfig{Publish: up.url("out"), Timeout: 2 * time.Second, authRetry: tc.authRetry}
			var bad *badCamera
			if tc.camera != nil {
				bad = startBadCamera(t, tc.camera)
				cfg.Source = bad.url()
			} else {
				cam := newTestServer(t)
				startCamera(t, cam.url("cam"), "libx264", "", 60)
				waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
				cfg.Source = cam.url("cam")
			}
			if tc.creds {
				cfg.Username, cfg.Password = "admin", "wrong"
			}
			r, stop := startRelay(t, cfg)
			waitFor(t, 10*time.Second, "the first failure", func() bool { return r.Stats().LastError != "" })
			goroutines, heap := settle()

			// Let it fail and retry a while: nothing may accumulate.
			waitFor(t, 15*time.Second, "several retries", func() bool { return r.Stats().Reconnects >= 4 })
			goroutines2, heap2 := settle()
			st := r.Stats()
			stop()

			t.Logf("LastError: %s", st.LastError)
			if !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("LastError = %q, want it to contain %q", st.LastError, tc.wantErr)
			}
			if st.LastErrorAt.IsZero() {
				t.Error("LastErrorAt not set")
			}
			if bad != nil && bad.connections() < 4 {
				t.Errorf("camera saw %d connections, want retries", bad.connections())
			}
			if goroutines2 > goroutines+2 {
				t.Errorf("goroutines grew from %d to %d while failing", goroutines, goroutines2)
			}
			if heap2 > heap+2<<20 {
				t.Errorf("heap grew from %d to %d bytes while failing", heap, heap2)
			}
		})
	}
}

// settle returns the goroutine count and live heap, taking the least of a few readings so that
// a connection attempt caught in flight is not mistaken for a leak.
func settle() (int, uint64) {
	goroutines, heap := int(^uint(0)>>1), ^uint64(0)
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		goroutines, heap = min(goroutines, runtime.NumGoroutine()), min(heap, m.HeapAlloc)
	}
	return goroutines, heap
}
