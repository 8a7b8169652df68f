package onvifdev

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/onvif"
)

func startDevice(t *testing.T, cfg Config) *Device {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return d
}

// tokenRequest sends GetDeviceInformation with a hand-made UsernameToken.
func tokenRequest(t *testing.T, xaddr, user, password, nonce string, created time.Time) (int, string) {
	t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(nonce)
	ts := created.UTC().Format("2006-01-02T15:04:05.000Z")
	env := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Security><UsernameToken>` +
		`<Username>` + user + `</Username><Password>` + onvif.WSSEDigest(raw, ts, password) + `</Password>` +
		`<Nonce>` + nonce + `</Nonce><Created>` + ts + `</Created></UsernameToken></Security></s:Header>` +
		`<s:Body><GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>`
	resp, err := http.Post(xaddr, "application/soap+xml", strings.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestWSSecurityIsCheckedAgainstTheDeviceClock(t *testing.T) {
	skew := 24 * time.Hour
	d := startDevice(t, Config{Auth: AuthWSSecurity, Username: "admin", Password: "pw", ClockSkew: skew})
	deviceNow := time.Now().Add(skew)
	tests := []struct {
		name     string
		password string
		nonce    string
		created  time.Time
		accepted bool
	}{
		{"token made on the device's clock", "pw", "AAAAAAAAAAAAAAAAAAAAAA==", deviceNow, true},
		{"the same nonce again (replay)", "pw", "AAAAAAAAAAAAAAAAAAAAAA==", deviceNow, false},
		{"token made on our clock, a day behind the device", "pw", "AQAAAAAAAAAAAAAAAAAAAA==", time.Now(), false},
		{"wrong password", "pw2", "AgAAAAAAAAAAAAAAAAAAAA==", deviceNow, false},
	}
	for _, tt := range tests {
		status, body := tokenRequest(t, d.XAddr(), "admin", tt.password, tt.nonce, tt.created)
		accepted := status == http.StatusOK && strings.Contains(body, "GetDeviceInformationResponse")
		if accepted != tt.accepted {
			t.Errorf("%s: accepted %v (HTTP %d: %.200s)", tt.name, accepted, status, body)
		}
		if !accepted && !strings.Contains(body, "NotAuthorized") {
			t.Errorf("%s: refusal is not a NotAuthorized fault: %.200s", tt.name, body)
		}
	}
}

func TestMalformedRequestsGetAFault(t *testing.T) {
	d := startDevice(t, Config{})
	for _, body := range []string{"", "<a>", strings.Repeat("<a>", 1000), "<Envelope><Body></Body></Envelope>"} {
		resp, err := http.Post(d.XAddr(), "application/soap+xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "Fault") {
			t.Errorf("%.20q: HTTP %d %.200s", body, resp.StatusCode, data)
		}
	}
}
