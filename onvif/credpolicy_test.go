package onvif

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/camgate/camgate/internal/redirect"
	"github.com/camgate/camgate/internal/testtool"
)

const deviceInfoAnswer = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>` +
	`<GetDeviceInformationResponse><Manufacturer>Old</Manufacturer></GetDeviceInformationResponse></s:Body></s:Envelope>`

// basicOnlyDevice answers only requests carrying HTTP Basic admin:pw and counts every Basic
// header it was sent (the password in cleartext).
func basicOnlyDevice(basics *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if ok {
			basics.Add(1)
		}
		if !ok || u != "admin" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="cam"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".jpg") {
			_, _ = w.Write([]byte{0xFF, 0xD8, 0xFF, 0xD9})
			return
		}
		_, _ = w.Write([]byte(deviceInfoAnswer))
	})
}

// Issue 13 acceptance 3 (http:// part): a Basic challenge over http:// from an unmarked camera
// gets no password, and the error names the reason and the auth: basic setting. Over https://,
// or with the mark, Basic is answered.
func TestBasicOverHTTPNeedsTheMark(t *testing.T) {
	cases := []struct {
		name       string
		tls        bool
		allowBasic bool
		wantBasic  bool
	}{
		{"http, unmarked", false, false, false},
		{"http, auth: basic", false, true, true},
		{"https, unmarked", true, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var basics atomic.Int64
			srv := httptest.NewUnstartedServer(basicOnlyDevice(&basics))
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			c, err := NewClient(ClientConfig{XAddr: srv.URL + "/onvif/device_service", Username: "admin", Password: "pw",
				AllowBasic: tc.allowBasic, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, infoErr := c.GetDeviceInformation(context.Background())
			_, snapErr := c.Snapshot(context.Background(), srv.URL+"/snap.jpg")
			for what, err := range map[string]error{"GetDeviceInformation": infoErr, "snapshot": snapErr} {
				if tc.wantBasic {
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
					continue
				}
				if !errors.Is(err, ErrBasicRefused) || !strings.Contains(err.Error(), "auth: basic") {
					t.Errorf("%s: err = %v, want ErrBasicRefused naming auth: basic", what, err)
				}
			}
			if got := basics.Load(); tc.wantBasic != (got > 0) {
				t.Errorf("the device received %d Basic headers", got)
			}
		})
	}
}

// Issue 13 acceptance 2 (ONVIF and snapshot parts): a camera that answers 307 to a device on
// another address gets its token and password there 0 times.
func TestRedirectToAnotherHostCarriesNoCredentials(t *testing.T) {
	var stolen atomic.Int64
	thief := testtool.ServeHTTP(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "" || strings.Contains(string(body), "UsernameToken") {
			stolen.Add(1)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="thief"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	camera := testtool.ServeHTTP(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+thief+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	c, err := NewClient(ClientConfig{XAddr: "http://" + camera + "/onvif/device_service", Username: "admin",
		Password: "pw", AllowBasic: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeviceInformation(context.Background()); !errors.Is(err, redirect.ErrOtherHost) {
		t.Errorf("GetDeviceInformation: err = %v, want ErrOtherHost", err)
	}
	if _, err := c.Snapshot(context.Background(), "http://"+camera+"/snap.jpg"); !errors.Is(err, redirect.ErrOtherHost) {
		t.Errorf("snapshot: err = %v, want ErrOtherHost", err)
	}
	// A snapshot URI naming another host gets no credentials either, whatever it challenges.
	if _, err := c.Snapshot(context.Background(), "http://"+thief+"/snap.jpg"); err == nil {
		t.Error("snapshot from the other host succeeded")
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the other host received credentials %d times", n)
	}
}

// Issue 13 finding 1: user:password@ in the XAddr is the client's credentials, never part of
// the URL it requests: net/http would send it as Basic with every request, before any
// challenge and over plain http without the auth: basic mark, and every error would quote it.
func TestUserinfoInTheXAddrIsNotSentUnasked(t *testing.T) {
	const secret = "xaddr-s3cret"
	cases := []struct {
		name       string
		allowBasic bool
	}{
		{"http, unmarked", false},
		{"http, auth: basic", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var requests, unasked, basics, challenged atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if r.Header.Get("Authorization") != "" && challenged.Load() == 0 {
					unasked.Add(1)
				}
				u, p, ok := r.BasicAuth()
				if ok {
					basics.Add(1)
				}
				if !ok || u != "admin" || p != secret {
					challenged.Add(1)
					w.Header().Set("WWW-Authenticate", `Basic realm="cam"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				_, _ = w.Write([]byte(deviceInfoAnswer))
			}))
			defer srv.Close()
			xaddr := strings.Replace(srv.URL, "http://", "http://admin:"+secret+"@", 1) + "/onvif/device_service"
			c, err := NewClient(ClientConfig{XAddr: xaddr, AllowBasic: tc.allowBasic})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(c.XAddr(), secret) || strings.Contains(c.XAddr(), "@") {
				t.Errorf("XAddr() = %q keeps the user information", c.XAddr())
			}
			_, err = c.GetDeviceInformation(context.Background())
			if tc.allowBasic && err != nil {
				t.Errorf("with the mark, the XAddr's credentials answer the Basic challenge: %v", err)
			}
			if !tc.allowBasic && !errors.Is(err, ErrBasicRefused) {
				t.Errorf("err = %v, want ErrBasicRefused", err)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the password: %v", err)
			}
			if n := unasked.Load(); n != 0 {
				t.Errorf("%d requests carried Authorization before any challenge", n)
			}
			if n := basics.Load(); tc.allowBasic != (n > 0) {
				t.Errorf("the device received %d Basic headers over plain http (of %d requests)", n, requests.Load())
			}
		})
	}
	if _, err := NewClient(ClientConfig{XAddr: "http://admin:" + secret + "@cam:bad/onvif"}); err == nil ||
		strings.Contains(err.Error(), secret) {
		t.Errorf("an XAddr that does not parse: %v, want an error without the password", err)
	}
}

// An announced XAddr with user:password@ (anyone on the LAN can multicast one) is kept without
// it: the device URL camgate stores and asks carries no credentials the announcer chose.
func TestAnnouncedXAddrLosesItsUserinfo(t *testing.T) {
	tests := []struct {
		xaddrs []string
		want   string
	}{
		{[]string{"http://evil:pw@10.0.0.20/onvif/device_service"}, "http://10.0.0.20/onvif/device_service"},
		{[]string{"http://a:b@0.0.0.0:8080/onvif/device_service"}, "http://10.0.0.20:8080/onvif/device_service"},
	}
	for _, tt := range tests {
		if got := pickXAddr(tt.xaddrs, net.ParseIP("10.0.0.20")); got != tt.want {
			t.Errorf("pickXAddr(%q) = %q, want %q", tt.xaddrs, got, tt.want)
		}
	}
}
