//go:build soak

package rtsp

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"

	"github.com/camgate/camgate/internal/testtool"
)

// soakAttempts is how many failed attempts each failure path makes: `make soak` runs 10,000,
// .ci/run a shorter 2,000.
var soakAttempts = flag.Int("soak.attempts", 10000, "failed attempts per failure path")

// TestSoakFailurePaths (issue 18, "flat over weeks") drives a relay through the ways a gateway
// fails for weeks on end, each many thousand times with the outage backoff shortened to a
// millisecond: a camera path answering 404, a camera refusing connections, a camera refusing the
// password, and a server refusing ANNOUNCE (with a live ffmpeg camera behind the relay). The whole
// test process (relay, stand-in peers) must stay flat from the sample after the first thousand
// attempts to the last: testtool.SoakBounds.
func TestSoakFailurePaths(t *testing.T) {
	n := *soakAttempts
	fastRetry := &backoff{fast: time.Millisecond, fastPeriod: 24 * time.Hour, max: time.Millisecond,
		healthyAfter: 10 * time.Second}
	fastAuth := &authBackoff{fast: time.Millisecond, slow: time.Millisecond, fastTries: 3}
	tests := []struct {
		name string
		// relay starts the peers of the failure path and returns the relay's config.
		relay   func(t *testing.T) RelayConfig
		wantErr string
	}{
		{
			name: "camera answers 404",
			relay: func(t *testing.T) RelayConfig {
				cam := startBadCamera(t, answerRequests(func(cseq string) string {
					return "RTSP/1.0 404 Not Found\r\nCSeq: " + cseq + "\r\n\r\n"
				}))
				return RelayConfig{Source: cam.url(), Publish: "rtsp://127.0.0.1:1/unused"}
			},
			wantErr: "camera: DESCRIBE refused: 404 Not Found",
		},
		{
			name: "camera refuses connections",
			relay: func(t *testing.T) RelayConfig {
				return RelayConfig{Source: "rtsp://" + freeAddr(t) + "/cam", Publish: "rtsp://127.0.0.1:1/unused"}
			},
			wantErr: "connection refused",
		},
		{
			name: "camera refuses the password",
			relay: func(t *testing.T) RelayConfig {
				cam := startBadCamera(t, answerRequests(func(cseq string) string {
					return "RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq +
						"\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"" + cseq + "abc\"\r\n\r\n"
				}))
				return RelayConfig{Source: cam.url(), Username: "admin", Password: "typo",
					Publish: "rtsp://127.0.0.1:1/unused", authRetry: fastAuth}
			},
			wantErr: `password refused for user "admin"`,
		},
		{
			name: "server refuses ANNOUNCE",
			relay: func(t *testing.T) RelayConfig {
				up := newTestServer(t)
				up.refuse = base.StatusForbidden
				cam := newTestServer(t)
				startCamera(t, cam.url("cam"), "libx264", "aac", 3600)
				waitFor(t, 20*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
				return RelayConfig{Source: cam.url("cam"), Publish: up.url("out")}
			},
			wantErr: "upstream: ANNOUNCE refused: 403 Forbidden",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fp := testtool.NewFootprinter(t, tc.name)
			cfg := tc.relay(t)
			cfg.Timeout, cfg.retry = 2*time.Second, fastRetry
			r, stop := startRelay(t, cfg)
			defer stop()
			started := time.Now()
			for _, at := range []struct {
				label    string
				attempts int
			}{{"after 1000 attempts", min(1000, n)}, {"middle", n / 2}, {"end", n}} {
				waitAttempts(t, r, at.attempts, started)
				fp.Sample(at.label)
			}
			st := r.Stats()
			t.Logf("soak %s: %d attempts in %v; last error %q", tc.name, st.Reconnects,
				time.Since(started).Round(time.Second), st.LastError)
			if !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("LastError = %q, want it to contain %q", st.LastError, tc.wantErr)
			}
			fp.CheckFlat("after 1000 attempts", testtool.SoakBounds())
		})
	}
}

// waitAttempts waits until the relay has retried n times, allowing a generous 20 ms per attempt
// on a loaded machine.
func waitAttempts(t *testing.T, r *Relay, n int, started time.Time) {
	t.Helper()
	deadline := started.Add(time.Minute + time.Duration(n)*20*time.Millisecond)
	for r.Stats().Reconnects < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts after %v, want %d", r.Stats().Reconnects, time.Since(started).Round(time.Second), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
