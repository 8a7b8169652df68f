package web

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testCode = "1234-5678"

// testClock is a settable clock for sessions and the login limit.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestServer(t *testing.T, b Backend) (*Server, *testClock) {
	t.Helper()
	s, err := NewServer(Config{Addr: "127.0.0.1:0", PairCode: testCode, Backend: b, Version: "v9.9.9-test",
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: func(w io.Writer) { _, _ = io.WriteString(w, "camgate_up 1\n") }})
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.now = clock.now
	return s, clock
}

// client drives the handler as a browser would, remembering the session cookie and the CSRF
// token, and keeping every response for the secret scan.
type client struct {
	t         *testing.T
	h         http.Handler
	remote    string
	cookie    *http.Cookie
	csrf      string
	responses []*httptest.ResponseRecorder
}

func newClient(t *testing.T, s *Server) *client {
	return &client{t: t, h: s.Handler(), remote: "192.168.1.10:50000"}
}

// do sends a request; body is JSON-encoded unless it is a string (sent as is). Extra headers
// come as name, value pairs.
func (c *client) do(method, path string, body any, headers ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, "http://192.168.1.1:8080"+path, r)
	req.RemoteAddr = c.remote
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	if c.csrf != "" && method != http.MethodGet {
		req.Header.Set(csrfHeader, c.csrf)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, req)
	c.responses = append(c.responses, w)
	return w
}

func (c *client) login(code string) *httptest.ResponseRecorder {
	c.t.Helper()
	w := c.do("POST", "/api/login", map[string]string{"code": code})
	if w.Code == http.StatusOK {
		for _, ck := range w.Result().Cookies() {
			if ck.Name == sessionCookie {
				c.cookie = ck
			}
		}
		var s sessionInfo
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
			c.t.Fatal(err)
		}
		c.csrf = s.CSRFToken
	}
	return w
}

func mustStatus(t *testing.T, w *httptest.ResponseRecorder, want int) {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d; body %s", w.Code, want, w.Body.String())
	}
}

// decodeBody decodes a JSON response body into v, failing when it is not one.
func decodeBody(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("response body %q: %v", w.Body.String(), err)
	}
}

// errorOf returns the "error" of a JSON error body, failing when the body is not one.
func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error body: %q (%v)", w.Body.String(), err)
	}
	return e.Error
}

// apiCalls lists every API call but login and session, with a body valid enough that only
// authentication can refuse it.
var apiCalls = []struct {
	method, path string
	body         any
}{
	{"POST", "/api/logout", nil},
	{"GET", "/api/status", nil},
	{"GET", "/api/cameras", nil},
	{"POST", "/api/cameras", map[string]any{"url": "rtsp://10.0.0.20/live", "name": "x"}},
	{"PATCH", "/api/cameras/cam-a0b1c2d3e4f5", map[string]any{"name": "y"}},
	{"DELETE", "/api/cameras/cam-a0b1c2d3e4f5", nil},
	{"GET", "/api/cameras/cam-a0b1c2d3e4f5/snapshot.jpg", nil},
	{"POST", "/api/discover", nil},
	{"POST", "/api/test-stream", map[string]any{"url": "rtsp://10.0.0.20/live"}},
	{"GET", "/api/connection", nil},
	{"PUT", "/api/connection", map[string]any{"mqtt": map[string]any{"url": "mqtt://10.0.0.1"}}},
	{"GET", "/api/wifi-qr.png?ssid=home&password=12345678", nil},
	{"GET", "/api/no-such-thing", nil},
}

func TestEveryAPICallButLoginNeedsASession(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	for _, call := range apiCalls {
		t.Run(call.method+" "+call.path, func(t *testing.T) {
			c := newClient(t, s)
			w := c.do(call.method, call.path, call.body)
			mustStatus(t, w, http.StatusUnauthorized)
			errorOf(t, w)
		})
	}
	t.Run("a made-up session id", func(t *testing.T) {
		c := newClient(t, s)
		c.cookie = &http.Cookie{Name: sessionCookie, Value: strings.Repeat("ab", 32)}
		mustStatus(t, c.do("GET", "/api/status", nil), http.StatusUnauthorized)
	})
	t.Run("GET /api/session answers logged_in false", func(t *testing.T) {
		w := newClient(t, s).do("GET", "/api/session", nil)
		mustStatus(t, w, http.StatusOK)
		if got := strings.TrimSpace(w.Body.String()); got != `{"logged_in":false}` {
			t.Errorf("body %s", got)
		}
	})
}

func TestStateChangesNeedTheCSRFToken(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	for _, call := range apiCalls {
		if call.method == "GET" {
			continue
		}
		t.Run(call.method+" "+call.path, func(t *testing.T) {
			c := newClient(t, s)
			mustStatus(t, c.login(testCode), http.StatusOK)
			good := c.csrf

			c.csrf = ""
			mustStatus(t, c.do(call.method, call.path, call.body), http.StatusForbidden)
			c.csrf = strings.Repeat("0", len(good))
			mustStatus(t, c.do(call.method, call.path, call.body), http.StatusForbidden)
			// Another session's token is as wrong as a made-up one.
			other := newClient(t, s)
			other.login(testCode)
			c.csrf = other.csrf
			mustStatus(t, c.do(call.method, call.path, call.body), http.StatusForbidden)

			c.csrf = good
			if w := c.do(call.method, call.path, call.body); w.Code == http.StatusForbidden ||
				w.Code == http.StatusUnauthorized {
				t.Fatalf("with the token: status %d, body %s", w.Code, w.Body.String())
			}
		})
	}
}

func TestCrossOriginStateChangesAreRefused(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site but other origin", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign Origin", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"same origin", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://192.168.1.1:8080"}, http.StatusAccepted},
		{"no browser headers (curl)", nil, http.StatusAccepted},
	}
	s, _ := newTestServer(t, newFakeBackend())
	c := newClient(t, s)
	mustStatus(t, c.login(testCode), http.StatusOK)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustStatus(t, c.do("POST", "/api/discover", nil, tt.headers...), tt.want)
		})
	}
	t.Run("cross-site login", func(t *testing.T) {
		w := newClient(t, s).do("POST", "/api/login", map[string]string{"code": testCode}, "Sec-Fetch-Site", "cross-site")
		mustStatus(t, w, http.StatusForbidden)
	})
}

func TestLoginAcceptsTheCodeAsPeopleTypeIt(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{"1234-5678", http.StatusOK},
		{"12345678", http.StatusOK},
		{" 1234 5678 ", http.StatusOK},
		{"1234–5678", http.StatusOK}, // an en dash, as phones autocorrect
		{"1234-5679", http.StatusUnauthorized},
		{"1234567", http.StatusUnauthorized},
		{"", http.StatusUnauthorized},
		{strings.Repeat("1", 10000), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s, _ := newTestServer(t, newFakeBackend())
			mustStatus(t, newClient(t, s).login(tt.code), tt.want)
		})
	}
}

func TestSessionCookie(t *testing.T) {
	s, clock := newTestServer(t, newFakeBackend())
	c := newClient(t, s)
	w := c.login(testCode)
	mustStatus(t, w, http.StatusOK)
	ck := c.cookie
	if ck == nil {
		t.Fatal("no session cookie")
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", ck)
	}
	if len(ck.Value) != 64 {
		t.Errorf("session id %q is not 256 bits in hex", ck.Value)
	}
	if !strings.Contains(w.Header().Get("Set-Cookie"), "SameSite=Strict") {
		t.Errorf("Set-Cookie %q", w.Header().Get("Set-Cookie"))
	}

	w = c.do("GET", "/api/session", nil)
	var si sessionInfo
	decodeBody(t, w, &si)
	if !si.LoggedIn || si.CSRFToken != c.csrf {
		t.Errorf("GET /api/session = %s, want logged in with the login's token", w.Body.String())
	}

	clock.advance(sessionIdle - time.Minute)
	mustStatus(t, c.do("GET", "/api/status", nil), http.StatusOK)
	clock.advance(sessionIdle + time.Second)
	mustStatus(t, c.do("GET", "/api/status", nil), http.StatusUnauthorized)

	mustStatus(t, c.login(testCode), http.StatusOK)
	mustStatus(t, c.do("POST", "/api/logout", nil), http.StatusNoContent)
	mustStatus(t, c.do("GET", "/api/status", nil), http.StatusUnauthorized)
}

func TestTenthWrongCodeInAMinuteIsRefused(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		s, clock := newTestServer(t, newFakeBackend())
		c := newClient(t, s)
		for i := 1; i <= 9; i++ {
			mustStatus(t, c.login("0000-0000"), http.StatusUnauthorized)
			clock.advance(time.Second)
		}
		w := c.login(testCode) // the tenth attempt: refused even with the right code
		mustStatus(t, w, http.StatusTooManyRequests)
		ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Errorf("Retry-After %q, want 1..60 seconds", w.Header().Get("Retry-After"))
		}
		// One client's wrong codes are its own: the owner on another address still logs in.
		other := newClient(t, s)
		other.remote = "192.168.1.11:1234"
		mustStatus(t, other.login(testCode), http.StatusOK)

		clock.advance(time.Duration(ra) * time.Second)
		mustStatus(t, c.login(testCode), http.StatusOK)
	})
	t.Run("globally, across addresses", func(t *testing.T) {
		// A device with many addresses guesses no faster than allFailures a minute in all.
		s, _ := newTestServer(t, newFakeBackend())
		for i := range allFailures {
			c := newClient(t, s)
			c.remote = netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(1 + i%250)}).String() + ":1000"
			mustStatus(t, c.login("0000-0000"), http.StatusUnauthorized)
		}
		c := newClient(t, s)
		c.remote = "10.9.9.9:1000"
		mustStatus(t, c.login("0000-0000"), http.StatusTooManyRequests)
	})
	t.Run("an IPv6 /64 is one client", func(t *testing.T) {
		s, _ := newTestServer(t, newFakeBackend())
		for i := 1; i <= 9; i++ {
			c := newClient(t, s)
			c.remote = "[fd00::" + strconv.Itoa(i) + "]:1000"
			mustStatus(t, c.login("0000-0000"), http.StatusUnauthorized)
		}
		c := newClient(t, s)
		c.remote = "[fd00::abcd]:1000"
		mustStatus(t, c.login(testCode), http.StatusTooManyRequests)
	})
}

// Guesses sent all at once are judged against the limit as if one after another.
func TestParallelGuessesAreLimitedToo(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("POST", "http://192.168.1.1:8080/api/login", strings.NewReader(`{"code":"0000-0000"}`))
			req.RemoteAddr = "192.168.1.10:1000"
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			codes[i] = w.Code
		}()
	}
	wg.Wait()
	judged := 0
	for _, c := range codes {
		switch c {
		case http.StatusUnauthorized:
			judged++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("status %d", c)
		}
	}
	if judged != 9 {
		t.Errorf("%d of 50 parallel guesses were judged, want 9", judged)
	}
}

func TestJSONIsStrictAndBounded(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		headers []string
		want    int
		errHas  string
	}{
		{"unknown field", `{"url":"rtsp://10.0.0.2/","colour":"red"}`, nil, 400, `unknown field "colour"`},
		{"trailing data", `{"url":"rtsp://10.0.0.2/"} {}`, nil, 400, "after the JSON value"},
		{"not JSON", `url=rtsp://10.0.0.2/`, nil, 400, "bad request body"},
		{"empty", ``, nil, 400, "empty body"},
		{"wrong type", `{"url":5}`, nil, 400, "bad request body"},
		{
			"form content type",
			`{"url":"rtsp://10.0.0.2/"}`,
			[]string{"Content-Type", "application/x-www-form-urlencoded"},
			415,
			"application/json",
		},
		{"too big", `{"url":"rtsp://10.0.0.2/","name":"` + strings.Repeat("a", maxBodyBytes) + `"}`, nil, 413, "larger than"},
		{"both camera_id and url", `{"url":"rtsp://10.0.0.2/","camera_id":"x"}`, nil, 400, "either"},
		{"bad scheme", `{"url":"file:///etc/passwd"}`, nil, 400, "scheme"},
		{"name with a control character", `{"url":"rtsp://10.0.0.2/","name":"a\u0000b"}`, nil, 400, "control character"},
	}
	s, _ := newTestServer(t, newFakeBackend())
	c := newClient(t, s)
	mustStatus(t, c.login(testCode), http.StatusOK)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "http://192.168.1.1:8080/api/cameras", strings.NewReader(tt.body))
			req.RemoteAddr = c.remote
			req.AddCookie(c.cookie)
			req.Header.Set(csrfHeader, c.csrf)
			req.Header.Set("Content-Type", "application/json")
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			mustStatus(t, w, tt.want)
			if e := errorOf(t, w); !strings.Contains(e, tt.errHas) {
				t.Errorf("error %q, want it to mention %q", e, tt.errHas)
			}
		})
	}
}

func TestNoResponseEverContainsAPassword(t *testing.T) {
	const (
		camPass  = "cam-Secr3t!pw"
		urlPass  = "url-P4ss;word"
		mqttPass = "mqtt-S3cret%pw"
		fluPass  = "flu-S3cret pw"
		sinkPass = "sinkSecr3t"
	)
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	c := newClient(t, s)
	mustStatus(t, c.login(testCode), http.StatusOK)

	mustStatus(
		t,
		c.do(
			"POST",
			"/api/test-stream",
			map[string]any{"url": "rtsp://10.0.0.20/live", "username": "admin", "password": camPass},
		),
		200,
	)
	fb.testErr = true
	w := c.do("POST", "/api/test-stream", map[string]any{"url": "rtsp://admin:" + urlPass + "@10.0.0.20/live"})
	mustStatus(t, w, http.StatusUnprocessableEntity)
	fb.testErr = false
	mustStatus(
		t,
		c.do(
			"POST",
			"/api/cameras",
			map[string]any{"url": "rtsp://10.0.0.20/live", "name": "Porch", "username": "admin", "password": camPass},
		),
		201,
	)
	mustStatus(
		t,
		c.do("POST", "/api/cameras", map[string]any{"url": "rtsp://admin:" + urlPass + "@10.0.0.21/live", "name": "Yard"}),
		201,
	)
	mustStatus(
		t,
		c.do(
			"POST",
			"/api/cameras",
			map[string]any{"camera_id": "cam-a0b1c2d3e4f5", "username": "admin", "password": camPass},
		),
		201,
	)
	mustStatus(t, c.do("PATCH", "/api/cameras/cam-a0b1c2d3e4f5", map[string]any{"password": camPass, "name": "Gate"}), 200)
	mustStatus(t, c.do("PUT", "/api/connection", map[string]any{
		"mqtt": map[string]any{
			"url":          "mqtts://sc.example.com:8883",
			"username":     "gw",
			"password":     mqttPass,
			"topic_prefix": "camgate/gw",
		},
		"flussonic": map[string]any{"publish": "rtsp://:" + fluPass + "@stream.example.com:554/",
			"stream_name": "{camera_id}",
			"events": []map[string]string{
				{"url": "http://hook:" + sinkPass + "@watcher.example.com/events", "format": "episodes"},
			}},
	}), 200)
	mustStatus(t, c.do("PUT", "/api/connection", map[string]any{
		"flussonic": map[string]any{"publish": "rtsp://pub:" + fluPass + "@stream.example.com:554/",
			"stream_name": "{camera_id}"},
	}), http.StatusBadRequest)
	w = c.do(
		"PUT",
		"/api/connection",
		map[string]any{"mqtt": map[string]any{"url": "mqtt://reject.example", "username": "gw", "password": mqttPass}},
	)
	mustStatus(t, w, http.StatusInternalServerError)
	mustStatus(t, c.do("GET", "/api/connection", nil), 200)
	mustStatus(t, c.do("GET", "/api/cameras", nil), 200)
	mustStatus(t, c.do("GET", "/api/status", nil), 200)
	mustStatus(t, c.do("GET", "/api/session", nil), 200)
	mustStatus(t, c.do("GET", "/api/cameras/cam1/snapshot.jpg", nil), 200)

	for i, w := range c.responses {
		var all strings.Builder
		all.Write(w.Body.Bytes())
		for k, v := range w.Header() {
			all.WriteString(k + ": " + strings.Join(v, ", "))
		}
		for _, p := range []string{camPass, urlPass, mqttPass, fluPass, sinkPass, "S3cret", "Secr3t", "P4ss"} {
			if strings.Contains(all.String(), p) {
				t.Errorf("response %d contains the password %q: %s", i, p, all.String())
			}
		}
	}
	// The backend got the credentials that the URLs carried, and the connection kept its shape.
	var conn Connection
	decodeBody(t, c.do("GET", "/api/connection", nil), &conn)
	if !conn.MQTT.PasswordSet || !conn.Flussonic.PasswordSet || conn.Flussonic.Username != "" {
		t.Errorf("connection %+v: want both passwords set and no publish user", conn)
	}
	if want := "rtsp://stream.example.com:554/?password=" + url.QueryEscape(fluPass); fb.conn.Flussonic.Publish != want {
		t.Errorf("the backend got publish %q, want the password moved into the query: %q", fb.conn.Flussonic.Publish, want)
	}
	if len(conn.Flussonic.Events) != 1 || conn.Flussonic.Events[0].URL != "http://hook@watcher.example.com/events" {
		t.Errorf("event sinks %+v: want the sink with its user but no password", conn.Flussonic.Events)
	}
	if yard := fb.cams["cam2"]; yard.password != urlPass || yard.Username != "admin" || yard.Name != "Yard" {
		t.Errorf("credentials in the URL did not reach the backend: %+v", yard)
	}
}

// Revision 2 carries Flussonic's publish password in the publish URL's query (?password=…,
// SPEC §4). It is a password like any other (SPEC §8: secrets are write-only): no reply shows it,
// the connection says password_set, a save of the URL as GET showed it keeps the stored one, and
// clear_password drops it.
func TestPublishPasswordInTheQueryIsWriteOnly(t *testing.T) {
	const pubPass = "pub-S3cret&pw"
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	c := newClient(t, s)
	mustStatus(t, c.login(testCode), http.StatusOK)

	stored := "rtsp://stream.example.com:554/{stream_name}?password=" + url.QueryEscape(pubPass) + "&proto=tcp"
	mustStatus(
		t,
		c.do(
			"PUT",
			"/api/connection",
			map[string]any{"flussonic": map[string]any{"publish": stored, "stream_name": "{camera_id}"}},
		),
		200,
	)
	if got := fb.conn.Flussonic.Publish; got != stored {
		t.Fatalf("backend got publish %q, want %q", got, stored)
	}
	var conn Connection
	w := c.do("GET", "/api/connection", nil)
	mustStatus(t, w, 200)
	decodeBody(t, w, &conn)
	if want := "rtsp://stream.example.com:554/{stream_name}?proto=tcp"; conn.Flussonic.Publish != want ||
		!conn.Flussonic.PasswordSet {
		t.Errorf(
			"GET shows publish %q (password_set %v), want %q and password_set",
			conn.Flussonic.Publish,
			conn.Flussonic.PasswordSet,
			want,
		)
	}

	// The page saves what it was shown: the stored password stays.
	mustStatus(
		t,
		c.do(
			"PUT",
			"/api/connection",
			map[string]any{"flussonic": map[string]any{"publish": conn.Flussonic.Publish, "stream_name": "{camera_id}"}},
		),
		200,
	)
	want := "rtsp://stream.example.com:554/{stream_name}?proto=tcp&password=" + url.QueryEscape(pubPass)
	if got := fb.conn.Flussonic.Publish; got != want {
		t.Errorf("a save without the password gave the backend %q, want %q", got, want)
	}
	// A failing save does not quote it either.
	w = c.do(
		"PUT",
		"/api/connection",
		map[string]any{
			"flussonic": map[string]any{"publish": "ftp://stream.example.com/?password=" + url.QueryEscape(pubPass)},
		},
	)
	mustStatus(t, w, http.StatusBadRequest)
	// clear_password drops it.
	mustStatus(t, c.do("PUT", "/api/connection", map[string]any{"flussonic": map[string]any{
		"publish": "rtsp://stream.example.com:554/{stream_name}", "clear_password": true,
		"stream_name": "{camera_id}"}}), 200)
	if got := fb.conn.Flussonic.Publish; got != "rtsp://stream.example.com:554/{stream_name}" {
		t.Errorf("clear_password gave the backend %q, want the URL without its password", got)
	}

	for i, w := range c.responses {
		for _, p := range []string{pubPass, url.QueryEscape(pubPass), "S3cret"} {
			if strings.Contains(w.Body.String(), p) {
				t.Errorf("response %d contains the publish password: %s", i, w.Body.String())
			}
		}
	}
}

// The connection form's publish password travels as Flussonic checks a stream's publish
// password: as the publish URL's password query parameter (SPEC §4; Flussonic's "Authorization
// for stream publishing"), for RTSP and RTMP alike. Flussonic's publish password has no user, so
// a user name is refused rather than sent where nothing reads it.
func TestPublishPasswordFromTheFormGoesInTheQuery(t *testing.T) {
	cases := []struct {
		name    string
		update  map[string]any
		publish string // what the backend gets; "" when refused
		code    ErrorCode
		field   string
	}{
		{"the form's password on an RTSP URL",
			map[string]any{"publish": "rtsp://fl.example.com:554/{stream_name}", "password": "p&w d"},
			"rtsp://fl.example.com:554/{stream_name}?password=p%26w+d", "", ""},
		{"the form's password on an RTMP URL",
			map[string]any{"publish": "rtmp://fl.example.com/static/{stream_name}", "password": "pw"},
			"rtmp://fl.example.com/static/{stream_name}?password=pw", "", ""},
		{"beside a query that is kept",
			map[string]any{"publish": "rtsp://fl.example.com/{stream_name}?proto=tcp", "password": "pw"},
			"rtsp://fl.example.com/{stream_name}?proto=tcp&password=pw", "", ""},
		{"replacing the password the URL carried",
			map[string]any{"publish": "rtsp://fl.example.com/{stream_name}?password=old&x=1", "password": "new"},
			"rtsp://fl.example.com/{stream_name}?x=1&password=new", "", ""},
		{"a password pasted as :password@ moves into the query",
			map[string]any{"publish": "rtmp://:pw@fl.example.com/{stream_name}"},
			"rtmp://fl.example.com/{stream_name}?password=pw", "", ""},
		{"a user name in the form is refused",
			map[string]any{"publish": "rtsp://fl.example.com/", "username": "camgate", "password": "pw"},
			"", CodePublishUser, "flussonic.username"},
		{"a user in the URL is refused",
			map[string]any{"publish": "rtsp://camgate:pw@fl.example.com/"},
			"", CodePublishUser, "flussonic.publish"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFakeBackend()
			s, _ := newTestServer(t, fb)
			c := newClient(t, s)
			mustStatus(t, c.login(testCode), http.StatusOK)
			tc.update["stream_name"] = "{camera_id}"
			w := c.do("PUT", "/api/connection", map[string]any{"flussonic": tc.update})
			if tc.code != "" {
				mustStatus(t, w, http.StatusBadRequest)
				var e struct {
					Code  ErrorCode `json:"code"`
					Field string    `json:"field"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
					t.Fatalf("not a JSON error: %s", w.Body.String())
				}
				if e.Code != tc.code || e.Field != tc.field || strings.Contains(w.Body.String(), "pw") {
					t.Errorf("refused as %s, want code %s on %s without the password", w.Body.String(), tc.code, tc.field)
				}
				if fb.conn.Flussonic != nil {
					t.Errorf("the backend got %+v", fb.conn.Flussonic)
				}
				return
			}
			mustStatus(t, w, http.StatusOK)
			f := fb.conn.Flussonic
			if f.Publish != tc.publish || f.Password != "" || f.Username != "" {
				t.Errorf("the backend got publish %q, password %q, user %q; want %q and neither",
					f.Publish, f.Password, f.Username, tc.publish)
			}
			var conn Connection
			if err := json.Unmarshal(c.do("GET", "/api/connection", nil).Body.Bytes(), &conn); err != nil {
				t.Fatal(err)
			}
			if !conn.Flussonic.PasswordSet || strings.Contains(conn.Flussonic.Publish, "password") {
				t.Errorf("GET shows %+v, want the URL without its password and password_set", conn.Flussonic)
			}
		})
	}
}

func TestCameraEndpoints(t *testing.T) {
	fb := newFakeBackend()
	s, _ := newTestServer(t, fb)
	c := newClient(t, s)
	mustStatus(t, c.login(testCode), http.StatusOK)

	w := c.do("GET", "/api/cameras/cam-a0b1c2d3e4f5/snapshot.jpg", nil)
	mustStatus(t, w, http.StatusNotFound)
	errorOf(t, w)

	mustStatus(t, c.do("POST", "/api/cameras", map[string]any{"camera_id": "cam-a0b1c2d3e4f5", "password": "x"}), 201)
	w = c.do("GET", "/api/cameras/cam-a0b1c2d3e4f5/snapshot.jpg", nil)
	mustStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); ct != "image/jpeg" || !bytes.Equal(w.Body.Bytes(), fb.snapshot) {
		t.Errorf("snapshot: %s, %q", ct, w.Body.Bytes())
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		want   int
	}{
		{"rename", "PATCH", "/api/cameras/cam-a0b1c2d3e4f5", map[string]any{"name": " Gate "}, 200},
		{"disable", "PATCH", "/api/cameras/cam-a0b1c2d3e4f5", map[string]any{"enabled": false}, 200},
		{"empty patch", "PATCH", "/api/cameras/cam-a0b1c2d3e4f5", map[string]any{}, 400},
		{"blank name", "PATCH", "/api/cameras/cam-a0b1c2d3e4f5", map[string]any{"name": "  "}, 400},
		{"unknown camera", "PATCH", "/api/cameras/nope", map[string]any{"name": "x"}, 404},
		{"remove unknown", "DELETE", "/api/cameras/nope", nil, 404},
		{"add unknown discovered", "POST", "/api/cameras", map[string]any{"camera_id": "nope"}, 404},
		{"add with neither", "POST", "/api/cameras", map[string]any{"name": "x"}, 400},
		{"discover", "POST", "/api/discover", nil, 202},
		{"remove", "DELETE", "/api/cameras/cam-a0b1c2d3e4f5", nil, 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := c.do(tt.method, tt.path, tt.body)
			mustStatus(t, w, tt.want)
			if tt.want >= 400 {
				errorOf(t, w)
			}
		})
	}
	if fb.scans != 1 {
		t.Errorf("scans = %d, want 1", fb.scans)
	}
}

func TestStatusFillsTheVersion(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	c := newClient(t, s)
	c.login(testCode)
	var st GatewayStatus
	if err := json.Unmarshal(c.do("GET", "/api/status", nil).Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != "v9.9.9-test" || st.GatewayID != "gw-test" || st.Flussonic.State != LinkDown {
		t.Errorf("status %+v", st)
	}
}

func TestPublicEndpointsAndHeaders(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/healthz", "text/plain", "ok\n"},
		{"/metrics", "text/plain", "camgate_up 1\n"},
		{"/", "text/html", "<script src=\"app.js\""},
		{"/app.js", "text/javascript", "textContent"},
		{"/style.css", "text/css", "@media"},
		{"/api/session", "application/json", "logged_in"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := newClient(t, s).do("GET", tt.path, nil)
			mustStatus(t, w, http.StatusOK)
			h := w.Header()
			if !strings.HasPrefix(h.Get("Content-Type"), tt.wantType) {
				t.Errorf("Content-Type %q, want %s", h.Get("Content-Type"), tt.wantType)
			}
			if !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("body lacks %q", tt.wantBody)
			}
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
				"X-Frame-Options":        "DENY",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			csp := h.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'self'", "img-src 'self' data: blob:", "object-src 'none'",
				"frame-ancestors 'none'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %q", csp, d)
				}
			}
			if strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP allows inline code: %q", csp)
			}
		})
	}
}

// The CSP forbids inline script and style; the page must not rely on them.
func TestPageHasNoInlineCode(t *testing.T) {
	page, err := staticFiles.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := strings.ToLower(string(page))
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onload=", " onerror=", " onsubmit=",
		"javascript:", `src="http`, `href="http`, "//" + "fonts."} {
		if strings.Contains(html, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	js, err := staticFiles.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func TestPublicHostNamesAreRefused(t *testing.T) {
	tests := []struct {
		host string
		want int
	}{
		{"192.168.1.1:8080", http.StatusOK},
		{"[fd00::1]:8080", http.StatusOK},
		{"localhost:8080", http.StatusOK},
		{"router", http.StatusOK},
		{"gateway.lan", http.StatusOK},
		{"camgate.local.", http.StatusOK},
		{"gw.home.arpa:8080", http.StatusOK},
		{"attacker.example.com", http.StatusMisdirectedRequest}, // DNS rebinding
		{"192.168.1.1.nip.io", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	}
	s, _ := newTestServer(t, newFakeBackend())
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.Host = tt.host
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			mustStatus(t, w, tt.want)
		})
	}
}
