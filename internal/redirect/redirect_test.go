package redirect

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/camgate/camgate/internal/testtool"
)

func TestSameHost(t *testing.T) {
	cases := []struct {
		from, to string
		ok       bool
	}{
		{"http://10.0.0.20/onvif/device_service", "http://10.0.0.20/onvif/other", true},
		{"http://10.0.0.20/a", "http://10.0.0.20:80/b", true},
		{"https://cam.lan/a", "https://CAM.lan:443/b", true},
		{"http://[fe80::1]/a", "http://[fe80::1]:80/b", true},
		{"http://10.0.0.20/a", "http://10.0.0.21/a", false},
		{"http://10.0.0.20/a", "http://10.0.0.20:8080/a", false},
		{"http://10.0.0.20/a", "https://10.0.0.20/a", false},
		{"https://10.0.0.20/a", "http://10.0.0.20/a", false},
		{"http://cam.lan/a", "http://evil.cam.lan/a", false},
		{"http://[::1]:8080/a", "http://[::1]:8081/a", false},
	}
	for _, c := range cases {
		from, _ := url.Parse(c.from)
		to, _ := url.Parse(c.to)
		err := SameHost(&http.Request{URL: to}, []*http.Request{{URL: from}})
		if (err == nil) != c.ok {
			t.Errorf("%s -> %s: err %v, want ok=%v", c.from, c.to, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrOtherHost) {
			t.Errorf("%s -> %s: %v does not match ErrOtherHost", c.from, c.to, err)
		}
	}
}

// A server on 127.0.0.1 answers 307 to a listener on 127.0.0.2 that counts what reaches it: with
// Client, neither the body (where ONVIF carries its token) nor a custom API-key header arrive.
func TestClientDoesNotResendToOtherHost(t *testing.T) {
	var stolen atomic.Int64
	thief := testtool.ServeHTTP(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
	}))
	camera := testtool.ServeHTTP(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			_, _ = io.WriteString(w, "ok") // the client's read checks it
			return
		}
		target := "http://" + thief + "/steal"
		if r.URL.Path == "/local" {
			target = "/same"
		}
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	c := Client(nil)
	post := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+camera+path,
			strings.NewReader("<wsse:Password>token</wsse:Password>"))
		req.Header.Set("X-Api-Key", "secret")
		return c.Do(req)
	}
	if resp, err := post("/away"); !errors.Is(err, ErrOtherHost) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("redirect away: err %v, want ErrOtherHost", err)
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the other host received %d requests", n)
	}
	resp, err := post("/local")
	if err != nil {
		t.Fatalf("redirect on the same host: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("redirect on the same host: body %q", body)
	}
}

func TestClientKeepsCallersCheck(t *testing.T) {
	mine := errors.New("mine")
	c := Client(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return mine }})
	u, _ := url.Parse("http://10.0.0.20/a")
	if err := c.CheckRedirect(&http.Request{URL: u}, []*http.Request{{URL: u}}); !errors.Is(err, mine) {
		t.Fatalf("caller's CheckRedirect not consulted: %v", err)
	}
}
