package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/testtool"
)

func TestWiFiPayload(t *testing.T) {
	tests := []struct {
		name string
		n    WiFiNetwork
		want string
	}{
		{"WPA", WiFiNetwork{SSID: "home", Password: "correct horse", Security: "WPA"}, `WIFI:T:WPA;S:home;P:correct horse;;`},
		{
			"reserved characters escaped",
			WiFiNetwork{SSID: `a;b,c:d"e\f`, Password: `p;,:"\w0rd`, Security: "WPA"},
			`WIFI:T:WPA;S:a\;b\,c\:d\"e\\f;P:p\;\,\:\"\\w0rd;;`,
		},
		{"open network has no password", WiFiNetwork{SSID: "cafe", Security: "nopass"}, `WIFI:T:nopass;S:cafe;;`},
		{
			"hidden",
			WiFiNetwork{SSID: "attic", Password: "12345", Security: "WEP", Hidden: true},
			`WIFI:T:WEP;S:attic;P:12345;H:true;;`,
		},
		{"UTF-8 SSID", WiFiNetwork{SSID: "Дача", Password: "пароль123", Security: "WPA"}, `WIFI:T:WPA;S:Дача;P:пароль123;;`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.n.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tt.n.Payload(); got != tt.want {
				t.Errorf("Payload() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWiFiValidate(t *testing.T) {
	tests := []struct {
		name string
		n    WiFiNetwork
	}{
		{"no SSID", WiFiNetwork{Password: "12345678", Security: "WPA"}},
		{"SSID over 32 bytes", WiFiNetwork{SSID: strings.Repeat("s", 33), Password: "12345678", Security: "WPA"}},
		{"WPA password too short", WiFiNetwork{SSID: "home", Password: "1234567", Security: "WPA"}},
		{"WPA password too long", WiFiNetwork{SSID: "home", Password: strings.Repeat("p", 64), Security: "WPA"}},
		{"WEP key of a wrong length", WiFiNetwork{SSID: "home", Password: "123456", Security: "WEP"}},
		{"open network with a password", WiFiNetwork{SSID: "home", Password: "12345678", Security: "nopass"}},
		{"unknown security", WiFiNetwork{SSID: "home", Password: "12345678", Security: "WPA4"}},
		{"not UTF-8", WiFiNetwork{SSID: "ho\xffme", Password: "12345678", Security: "WPA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.n.Validate(); err == nil {
				t.Errorf("%+v: no error", tt.n)
			}
		})
	}
}

// zbarimg finds the QR decoder, or skips (fails in CI) when zbar-tools is not installed.
func zbarimg(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "zbar-tools", "zbarimg")
}

// The QR code served by the API decodes, with a real decoder, to the escaped Wi-Fi string.
func TestWiFiQRDecodes(t *testing.T) {
	bin := zbarimg(t)
	tests := []struct {
		name, query, want string
	}{
		{"reserved characters", `ssid=` + urlQuery(`my;net,a:b"c\d`) + `&password=` + urlQuery(`pa;ss,w:o"r\d`),
			`WIFI:T:WPA;S:my\;net\,a\:b\"c\\d;P:pa\;ss\,w\:o\"r\\d;;`},
		{"open and hidden", `ssid=guest&type=nopass&hidden=true`, `WIFI:T:nopass;S:guest;H:true;;`},
	}
	s, _ := newTestServer(t, newFakeBackend())
	c := newClient(t, s)
	mustStatus(t, c.login(testCode), http.StatusOK)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := c.do("GET", "/api/wifi-qr.png?"+tt.query, nil)
			mustStatus(t, w, http.StatusOK)
			if ct := w.Header().Get("Content-Type"); ct != "image/png" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q: the image holds the Wi-Fi password", cc)
			}
			f, err := os.CreateTemp(t.TempDir(), "qr-*.png")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(w.Body.Bytes()); err != nil {
				t.Fatal(err)
			}
			f.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "--raw", "-q", f.Name()).Output()
			if err != nil {
				t.Fatalf("zbarimg: %v", err)
			}
			if got := string(bytes.TrimRight(out, "\n")); got != tt.want {
				t.Errorf("decoded %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("bad network is a 400", func(t *testing.T) {
		w := c.do("GET", "/api/wifi-qr.png?ssid=home&password=short", nil)
		mustStatus(t, w, http.StatusBadRequest)
		if e := errorOf(t, w); !strings.Contains(e, "8 to 63") {
			t.Errorf("error %q", e)
		}
	})
}

func urlQuery(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}
