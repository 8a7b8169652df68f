package rtsp

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// scriptedCamera is an RTSP server on a loopback address of the test's choice that answers
// every request with answer and records what it received, credentials above all. It plays
// the hostile or odd devices of a home LAN: a camera redirecting elsewhere, the "elsewhere"
// that waits for passwords, a camera asking for Basic, a camera refusing every password.
type scriptedCamera struct {
	ln     net.Listener
	answer func(req *base.Request) *base.Response
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    int
	requests []seenRequest
}

type seenRequest struct {
	at     time.Time
	req    base.Request
	method base.Method
	auth   string // the Authorization header, "" if none
}

const (
	testRealm = "cam"
	testNonce = "0123456789abcdef"
)

func startScriptedCamera(t *testing.T, host string, answer func(req *base.Request) *base.Response) *scriptedCamera {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", host, err)
	}
	c := &scriptedCamera{ln: ln, answer: answer}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns++
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer conn.Close()
				c.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	return c
}

func (c *scriptedCamera) serve(conn net.Conn) {
	br := bufio.NewReader(conn)
	for {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var req base.Request
		if err := req.Unmarshal(br); err != nil {
			return
		}
		seen := seenRequest{at: time.Now(), req: req, method: req.Method}
		if a := req.Header["Authorization"]; len(a) > 0 {
			seen.auth = a[0]
		}
		c.mu.Lock()
		c.requests = append(c.requests, seen)
		c.mu.Unlock()
		res := c.answer(&req)
		if res == nil {
			return
		}
		if res.Header == nil {
			res.Header = base.Header{}
		}
		res.Header["CSeq"] = req.Header["CSeq"]
		b, err := res.Marshal()
		if err != nil {
			return
		}
		if _, err := conn.Write(b); err != nil {
			return
		}
	}
}

func (c *scriptedCamera) url(path string) string { return "rtsp://" + c.ln.Addr().String() + path }

// seen returns what the camera received so far: connections, requests, and requests that
// carried credentials.
func (c *scriptedCamera) seen() (conns, requests, withAuth int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.requests {
		if r.auth != "" {
			withAuth++
		}
	}
	return c.conns, len(c.requests), withAuth
}

func (c *scriptedCamera) received() []seenRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seenRequest(nil), c.requests...)
}

// digestChallenge is a 401 asking for Digest (MD5), as nearly every camera sends.
func digestChallenge() *base.Response {
	return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{
		"WWW-Authenticate": auth.GenerateWWWAuthenticate(
			[]auth.VerifyMethod{auth.VerifyMethodDigestMD5}, testRealm, testNonce),
	}}
}

// trustedWith answers OPTIONS, challenges every other request without credentials, and hands
// requests that carry them to next: a camera that knows its user and checks nothing else.
func trustedWith(next func(req *base.Request) *base.Response) func(req *base.Request) *base.Response {
	return func(req *base.Request) *base.Response {
		if req.Method == base.Options {
			return &base.Response{StatusCode: base.StatusOK,
				Header: base.Header{"Public": base.HeaderValue{"DESCRIBE, SETUP, PLAY"}}}
		}
		if len(req.Header["Authorization"]) == 0 {
			return digestChallenge()
		}
		return next(req)
	}
}

// A camera that redirects to another host, after it has our credentials' challenge answered:
// whichever client follows it, the other host receives no credentials. The other host is a
// device on a second loopback address that asks every request for a password.
func TestNoCredentialsAcrossARedirect(t *testing.T) {
	trap := startScriptedCamera(t, "127.0.0.2", func(*base.Request) *base.Response { return digestChallenge() })
	camera := startScriptedCamera(t, "127.0.0.1", trustedWith(func(*base.Request) *base.Response {
		return &base.Response{StatusCode: base.StatusMovedPermanently, Header: base.Header{
			"Location": base.HeaderValue{trap.url("/cam")},
		}}
	}))
	const user, pass = "admin", "secret"
	// A client run until it has met the redirect a few times (relays retry).
	clients := []struct {
		name string
		run  func(t *testing.T) string // returns the error the user reads
	}{
		{"Probe (camgate probe, the page's Test stream)", func(t *testing.T) string {
			_, err := Probe(context.Background(), camera.url("/cam"), user, pass, time.Second)
			return errText(err)
		}},
		{"FindStream (the Test stream of a camera given by address)", func(t *testing.T) string {
			_, err := FindStream(context.Background(), camera.url(""), user, pass, FindStreamOptions{
				Paths: paths("/cam", "/other"), Interval: 5 * time.Millisecond,
			})
			return errText(err)
		}},
		{"TCP relay", relayUntilRetried(camera.url("/cam"), user, pass, "tcp")},
		{"UDP relay", relayUntilRetried(camera.url("/cam"), user, pass, "udp")},
		{"auto relay", relayUntilRetried(camera.url("/cam"), user, pass, "")},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			before := len(camera.received())
			msg := c.run(t)
			t.Logf("error: %s", msg)
			if conns, requests, withAuth := trap.seen(); withAuth != 0 || requests != 0 || conns != 0 {
				t.Fatalf("the other host got %d connections, %d requests, %d with credentials; want none",
					conns, requests, withAuth)
			}
			got := camera.received()[before:]
			if !answeredChallenge(got, user) {
				t.Errorf("the camera itself never got the challenge answered: the test proves nothing (%d requests)", len(got))
			}
			if !strings.Contains(msg, "another host") && !strings.Contains(msg, "301") {
				t.Errorf("error %q does not say the redirect was not followed", msg)
			}
		})
	}
}

// relayUntilRetried runs a relay from source until it has retried three times and returns its
// last error.
func relayUntilRetried(source, user, pass, transport string) func(t *testing.T) string {
	return func(t *testing.T) string {
		r, stop := startRelay(t, RelayConfig{
			Source: source, Username: user, Password: pass, Transport: transport,
			Publish: "rtsp://127.0.0.1:1/unused", Timeout: 2 * time.Second,
		})
		waitFor(t, 15*time.Second, "three camera retries", func() bool {
			st := r.Stats()
			return st.Reconnects >= 3 && strings.HasPrefix(st.LastError, "camera")
		})
		st := r.Stats()
		stop()
		return st.LastError
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// answeredChallenge reports whether some request carried Digest credentials for user.
func answeredChallenge(reqs []seenRequest, user string) bool {
	for _, r := range reqs {
		if strings.HasPrefix(r.auth, "Digest ") && strings.Contains(r.auth, `username="`+user+`"`) {
			return true
		}
	}
	return false
}

// basicCamera asks for Basic only and accepts user:pass.
func basicCamera(t *testing.T, user, pass string) *scriptedCamera {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return startScriptedCamera(t, "127.0.0.1", func(req *base.Request) *base.Response {
		if req.Method == base.Options {
			return &base.Response{StatusCode: base.StatusOK}
		}
		if a := req.Header["Authorization"]; len(a) == 1 && a[0] == want {
			return &base.Response{StatusCode: base.StatusNotFound} // let in, nothing to play
		}
		return &base.Response{StatusCode: base.StatusUnauthorized, Header: base.Header{
			"WWW-Authenticate": base.HeaderValue{`Basic realm="cam"`},
		}}
	})
}

// A camera that asks for Basic over rtsp:// gets no password unless it is marked auth: basic,
// and the error says why and what to set. Marked, it gets the password.
func TestBasicOnlyForAMarkedCamera(t *testing.T) {
	const user, pass = "admin", "secret"
	tests := []struct {
		name      string
		auth      string
		transport string
		wantAuth  bool
	}{
		{"unmarked, TCP", "", "tcp", false},
		{"unmarked, UDP", "", "udp", false},
		{"unmarked, auto", "", "", false},
		{"marked auth: basic", "basic", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := basicCamera(t, user, pass)
			r, stop := startRelay(t, RelayConfig{
				Source: cam.url("/cam"), Username: user, Password: pass, Transport: tt.transport, Auth: tt.auth,
				Publish: "rtsp://127.0.0.1:1/unused", Timeout: 2 * time.Second,
			})
			waitFor(t, 10*time.Second, "a camera error", func() bool { return strings.HasPrefix(r.Stats().LastError, "camera") })
			st := r.Stats()
			stop()
			_, _, withAuth := cam.seen()
			if got := withAuth > 0; got != tt.wantAuth {
				t.Fatalf("camera got %d requests with credentials, want credentials %v (LastError %q)",
					withAuth, tt.wantAuth, st.LastError)
			}
			if tt.wantAuth {
				if !strings.Contains(st.LastError, "DESCRIBE refused: 404") {
					t.Errorf("LastError = %q, want the 404 that follows accepted credentials", st.LastError)
				}
				return
			}
			for _, want := range []string{"Basic", "cleartext", "auth: basic"} {
				if !strings.Contains(st.LastError, want) {
					t.Errorf("LastError = %q, want it to name %q", st.LastError, want)
				}
			}
		})
	}
	t.Run("Probe and FindStream", func(t *testing.T) {
		cam := basicCamera(t, user, pass)
		_, err := Probe(context.Background(), cam.url("/cam"), user, pass, time.Second)
		if !strings.Contains(errText(err), "auth: basic") {
			t.Errorf("Probe error = %v, want it to name auth: basic", err)
		}
		_, err = FindStream(context.Background(), cam.url(""), user, pass,
			FindStreamOptions{Paths: paths("/cam"), Interval: time.Millisecond})
		if !strings.Contains(errText(err), "auth: basic") {
			t.Errorf("FindStream error = %v, want it to name auth: basic", err)
		}
		if _, _, withAuth := cam.seen(); withAuth != 0 {
			t.Errorf("camera got %d requests with credentials from Probe and FindStream, want 0", withAuth)
		}
	})
}

// A camera that refuses every password (issue 18): the relay sends credentials at most 3 times
// in the first minute and then every 5 minutes, says whose password was refused, and tries a
// new password at once. The minute runs ten times faster here: the backoff is the same rule
// with each period divided by ten.
func TestRefusedPasswordIsRetriedSlowly(t *testing.T) {
	const user, right = "admin", "right"
	cam := startScriptedCamera(t, "127.0.0.1", func(req *base.Request) *base.Response {
		if auth.Verify(req, user, right, []auth.VerifyMethod{auth.VerifyMethodDigestMD5}, testRealm, testNonce) == nil {
			return &base.Response{StatusCode: base.StatusNotFound}
		}
		return digestChallenge()
	})
	const scale = 10
	knob := newAuthBackoff()
	knob.fast /= scale
	knob.slow /= scale
	cfg := RelayConfig{
		Source: cam.url("/cam"), Username: user, Password: "typo",
		Publish: "rtsp://127.0.0.1:1/unused", Timeout: 2 * time.Second, authRetry: &knob,
	}
	r, stop := startRelay(t, cfg)
	time.Sleep(time.Minute / scale)
	st := r.Stats()
	stop()
	_, _, credentialed := cam.seen()
	t.Logf("%d credentialed requests in a (scaled) minute; LastError %q", credentialed, st.LastError)
	if credentialed > 5 || credentialed < 1 {
		t.Errorf("camera got %d requests with credentials in the first minute, want 1 to 5", credentialed)
	}
	if st.PasswordRefused != "camera" || !strings.HasPrefix(st.LastError, "camera: ") ||
		!strings.Contains(st.LastError, `password refused for user "admin"`) {
		t.Errorf("PasswordRefused %q, LastError %q; want the camera's password for admin refused",
			st.PasswordRefused, st.LastError)
	}

	// The owner types the right password: the agent restarts the relay with it.
	changed := time.Now()
	cfg.Password = right
	startRelay(t, cfg)
	waitFor(t, 5*time.Second, "the new password to reach the camera", func() bool {
		for _, req := range cam.received() {
			if req.at.After(changed) && req.auth != "" &&
				auth.Verify(&req.req, user, right, []auth.VerifyMethod{auth.VerifyMethodDigestMD5}, testRealm, testNonce) == nil {
				if d := req.at.Sub(changed); d > 2*time.Second {
					t.Errorf("the new password reached the camera %v after the change, want within 2 s", d)
				}
				return true
			}
		}
		return false
	})
}
