package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func pageOnly(t *testing.T) (*daemon, *page) {
	t.Helper()
	d := startDaemon(t, `gateway_id: gwt
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
flussonic: {publish: 'rtsp://127.0.0.1:9/{stream_name}'}
`)
	return d, loginPage(t, d)
}

// apiError is an error reply of the page's API.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field"`
}

// post sends a request whose error reply the test wants to read.
func (p *page) errorOf(method, path string, body any) (int, apiError) {
	p.t.Helper()
	st, err := p.do(method, path, body, nil)
	var e apiError
	if err != nil {
		_, js, _ := strings.Cut(err.Error(), fmt.Sprintf(": %d ", st))
		_ = json.Unmarshal([]byte(js), &e) // an answer that is not the API's error shape leaves e empty
	}
	return st, e
}

// Issue 13 acceptance 2 through the agent: the page's "Test stream" of a camera that redirects
// to another host (127.0.0.2), over RTSP and over ONVIF, gives that host no credentials: no
// Authorization header, no WS-Security token, no password.
func TestTestStreamSendsNoCredentialsAcrossARedirect(t *testing.T) {
	const secret = "test-stream-secret-13"
	_, p := pageOnly(t)
	tests := []struct {
		name, scheme, path string
	}{
		{"RTSP DESCRIBE redirected", "rtsp", "/cam"},
		{"ONVIF request redirected", "http", "/onvif/device_service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elsewhere := newCredTrap(t, "127.0.0.2", secret)
			lure := newCredTrap(t, "127.0.0.1", secret)
			lure.redirect = tt.scheme + "://" + elsewhere.addr() + tt.path
			st, e := p.errorOf("POST", "/api/test-stream", map[string]any{
				"url": tt.scheme + "://" + lure.addr() + tt.path, "username": "admin", "password": secret})
			if st != 422 {
				t.Errorf("test-stream: %d %+v, want 422 (the stream does not work)", st, e)
			}
			if strings.Contains(e.Error, secret) {
				t.Errorf("the error quotes the password: %q", e.Error)
			}
			if req, _, _, _ := lure.seen(); req == 0 {
				t.Fatal("the camera was never asked")
			}
			req, auths, tokens, clear := elsewhere.seen()
			if auths != 0 || tokens != 0 || clear != 0 {
				t.Fatalf("the other host got %d requests: %d Authorization headers, %d WS-Security tokens, %d with the password",
					req, auths, tokens, clear)
			}
			t.Logf("other host: %d requests, no credentials; the page said %q", req, e.Error)
		})
	}
}

// Issue 13 acceptance 3 through the agent: a camera not marked auth: basic that asks for Basic,
// over rtsp:// (the relay) and over http:// (its ONVIF device service), is never sent the
// password, and its last_error names the reason and the setting that would allow it.
func TestBasicChallengeFromAnUnmarkedCameraIsNamedInLastError(t *testing.T) {
	const secret = "basic-secret-13"
	d, p := pageOnly(t)
	tests := []struct {
		name, scheme, path string
	}{
		{"rtsp", "rtsp", "/cam"},
		{"ONVIF over http", "http", "/onvif/device_service"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			camera := newCredTrap(t, "127.0.0.1", secret)
			id := fmt.Sprintf("basic%d", i)
			url, user, pass, enabled := tt.scheme+"://"+camera.addr()+tt.path, "admin", secret, true
			if _, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: id, URL: &url, Username: &user,
				Password: &pass, Enabled: &enabled}); err != nil {
				t.Fatal(err)
			}
			var lastError string
			waitFor(t, 20*time.Second, "last_error naming auth: basic", func() bool {
				var list struct {
					Cameras []struct {
						CameraID  string `json:"camera_id"`
						LastError string `json:"last_error"`
					} `json:"cameras"`
				}
				if _, err := p.do("GET", "/api/cameras", nil, &list); err != nil {
					t.Fatal(err)
				}
				for _, c := range list.Cameras {
					if c.CameraID == id {
						lastError = c.LastError
					}
				}
				return strings.Contains(lastError, "auth: basic")
			})
			if !strings.Contains(lastError, "Basic") || !strings.Contains(lastError, "cleartext") {
				t.Errorf("last_error %q does not name the reason (Basic sends the password in cleartext)", lastError)
			}
			req, auths, _, clear := camera.seen()
			if clear != 0 || auths != 0 {
				t.Fatalf("the camera got %d Authorization headers, %d with the password (of %d requests)", auths, clear, req)
			}
			t.Logf("%d requests, no password; last_error %q", req, lastError)
		})
	}
}

// Issue 13 "No SSRF": a camera URL from the page or MQTT must be an IP address in the LAN
// ranges, not the gateway's own services; and a test of one that does not answer says the same
// whether the port is closed or something hung up on it.
func TestCameraURLsFromThePageMustBeLANCameras(t *testing.T) {
	d, p := pageOnly(t)
	webPort := d.a.WebAddr()[strings.LastIndex(d.a.WebAddr(), ":")+1:]
	refused := []struct{ name, url string }{
		{"a public address", "rtsp://8.8.8.8/stream"},
		{"a host name", "rtsp://camera.example.com/stream"},
		{"the pairing page itself", "http://127.0.0.1:" + webPort + "/onvif/device_service"},
	}
	for _, tt := range refused {
		for _, call := range []struct{ method, path string }{{"POST", "/api/cameras"}, {"POST", "/api/test-stream"}} {
			st, e := p.errorOf(call.method, call.path, map[string]any{"url": tt.url})
			if st != 400 || e.Code != "camera_address" || e.Field != "url" {
				t.Errorf("%s %s with %s: %d %+v, want 400 camera_address on url", call.method, call.path, tt.name, st, e)
			}
		}
	}
	// An added camera moved to such an address by set_camera is refused too.
	url := "rtsp://127.0.0.1:9/ok"
	if _, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: "lan", URL: &url}); err != nil {
		t.Fatal(err)
	}
	st, e := p.errorOf("PATCH", "/api/cameras/lan", map[string]any{"url": "rtsp://8.8.8.8/x"})
	if st != 400 || e.Code != "camera_address" {
		t.Errorf("PATCH to a public address: %d %+v, want 400 camera_address", st, e)
	}

	// A closed port, a port that hangs up and one that speaks another protocol, over RTSP and
	// over ONVIF: the same answer, so the page is no port scanner.
	banner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")) // a client that left already
			c.Close()
		}
	}()
	answers := map[string]string{}
	for name, addr := range map[string]string{"closed": fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"hangs up": hangupPort(t), "speaks another protocol": banner.Addr().String()} {
		for _, u := range []string{
			"rtsp://" + addr + "/stream", "http://" + addr + "/onvif/device_service", "rtsp://" + addr,
		} {
			st, e := p.errorOf("POST", "/api/test-stream", map[string]any{"url": u})
			if st != 422 {
				t.Errorf("test-stream of %s, a port that %s: %d %+v, want 422", u, name, st, e)
			}
			answers[name+" ("+strings.Replace(u, addr, "ADDR", 1)+")"] = e.Error
		}
	}
	for name, answer := range answers {
		if answer != answers["closed (rtsp://ADDR/stream)"] || !strings.Contains(answer, "no camera answered") {
			t.Errorf("test-stream of a port that %s says %q, want the same \"no camera answered\" for all: %q",
				name, answer, answers)
		}
	}
}

// The page's "Test stream" of a camera marked auth: basic uses the mark, as the camera's relay
// and ONVIF client do (it used to test with Digest only and fail where the relay worked); an
// address of no marked camera gets no Basic.
func TestTestStreamUsesTheCamerasBasicMark(t *testing.T) {
	const secret = "marked-secret-13"
	d, p := pageOnly(t)
	for _, scheme := range []string{"rtsp", "http"} {
		marked := newCredTrap(t, "127.0.0.1", secret)
		unmarked := newCredTrap(t, "127.0.0.1", secret)
		path := map[string]string{"rtsp": "/cam", "http": "/onvif/device_service"}[scheme]
		url, basic, off := scheme+"://"+marked.addr()+path, "basic", false
		if _, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: "marked-" + scheme, URL: &url,
			Auth: &basic, Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		for _, trap := range []*credTrap{marked, unmarked} {
			p.errorOf("POST", "/api/test-stream", map[string]any{"url": scheme + "://" + trap.addr() + path,
				"username": "admin", "password": secret})
		}
		_, _, _, markedGot := marked.seen()
		_, _, _, unmarkedGot := unmarked.seen()
		if markedGot == 0 || unmarkedGot != 0 {
			t.Errorf("%s: the camera marked auth: basic got the password %d times (want > 0), an unmarked one %d (want 0)",
				scheme, markedGot, unmarkedGot)
		}
	}
}
