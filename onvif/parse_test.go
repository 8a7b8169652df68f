package onvif

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, parts ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(fixturePath(t, parts...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRecordedProbeMatchesParse(t *testing.T) {
	tests := []struct {
		file     string
		from     string
		endpoint string
		xaddr    string
		name     string
		hardware string
	}{
		{"axis-m2025le/ProbeMatches.xml", "192.168.0.209", "urn:uuid:3ea96f68-b845-4c0b-87cf-eee904c4be65",
			"http://192.168.0.209/onvif/device_service", "AXIS M2025-LE", "M2025-LE"},
		{"amcrest-ip5m-b1186e/ProbeMatches.xml", "192.168.0.205", "uuid:2a46daf1-86f6-91ad-5458-3d184eb186f6",
			"http://192.168.0.205/onvif/device_service", "Amcrest", "IP5M-B1186E"},
		// Announces a link-local and a LAN address: the one the answer came from wins.
		{"discovery/ProbeMatches_onvif-apg.xml", "192.168.1.24", "urn:uuid:a1f48ac2-dc8b-11df-b255-00408c1836b2",
			"http://192.168.1.24/onvif/services", "VENDOR MODEL", "MODEL"},
		// Announces localhost: replaced by the sender's address, port kept.
		{"gsoap-mockup/rendered/Probe.xml", "10.0.0.7", "uuid:c9790c3a-701b-464d-a189-0060351c8ada",
			"http://10.0.0.7:10101/onvif/device_service", "PREDATOR", "HD PREDATOR"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			kind, found, err := parseDiscovery(readFixture(t, strings.Split(tt.file, "/")...), net.ParseIP(tt.from))
			if err != nil {
				t.Fatal(err)
			}
			if kind != kindProbeMatches || len(found) != 1 {
				t.Fatalf("kind %v, %d matches", kind, len(found))
			}
			f := found[0]
			if f.EndpointRef != tt.endpoint || f.XAddr != tt.xaddr || f.Name != tt.name || f.Hardware != tt.hardware {
				t.Errorf("got %q %q %q %q\nwant %q %q %q %q", f.EndpointRef, f.XAddr, f.Name, f.Hardware,
					tt.endpoint, tt.xaddr, tt.name, tt.hardware)
			}
		})
	}
}

func TestEndpointReferencesWithAndWithoutURNAreOneDevice(t *testing.T) {
	if endpointKey("urn:uuid:ABC") != endpointKey("uuid:abc") {
		t.Error("urn:uuid:ABC and uuid:abc differ")
	}
}

func TestRecordedPullMessagesParse(t *testing.T) {
	tests := []struct {
		file         string
		messages     int
		motionEvents int
		motionOn     bool
	}{
		{"pelco-d6230l/events.PullMessages.xml", 10, 1, true},
		{"gsoap-mockup/rendered/PullMessages.xml", 2, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ns, err := ParseNotifications(readFixture(t, strings.Split(tt.file, "/")...))
			if err != nil {
				t.Fatal(err)
			}
			if len(ns) != tt.messages {
				t.Errorf("%d messages, want %d", len(ns), tt.messages)
			}
			motion := 0
			for _, n := range ns {
				if strings.ContainsAny(n.Topic, " \n\t") {
					t.Errorf("topic %q not trimmed", n.Topic)
				}
				if on, ok := n.Motion(); ok {
					motion++
					if on != tt.motionOn {
						t.Errorf("motion %v in %+v", on, n)
					}
				}
			}
			if motion != tt.motionEvents {
				t.Errorf("%d motion events, want %d", motion, tt.motionEvents)
			}
		})
	}
}

func TestMotionTopics(t *testing.T) {
	tests := []struct {
		topic    string
		data     map[string]string
		active   bool
		isMotion bool
	}{
		{"tns1:VideoSource/MotionAlarm", map[string]string{"State": "true"}, true, true},
		{"tns1:VideoSource/MotionAlarm", map[string]string{"State": "false"}, false, true},
		{"tns1:RuleEngine/CellMotionDetector/Motion", map[string]string{"IsMotion": "true"}, true, true},
		{"tns1:RuleEngine/tns1:CellMotionDetector/tns1:Motion", map[string]string{"IsMotion": "0"}, false, true},
		{"tns1:RuleEngine/CellMotionDetector/Motion", map[string]string{"Value": "True"}, true, true},
		{"tns1:RuleEngine/CellMotionDetector/Motion", map[string]string{"IsMotion": "maybe"}, false, false},
		{"tns1:Monitoring/ProcessorUsage", map[string]string{"Value": "0.44"}, false, false},
		{"tns1:VideoSource/GlobalSceneChange/ImagingService", map[string]string{"State": "true"}, false, false},
	}
	for _, tt := range tests {
		active, ok := Notification{Topic: tt.topic, Data: tt.data}.Motion()
		if active != tt.active || ok != tt.isMotion {
			t.Errorf("%s %v: Motion() = %v, %v; want %v, %v", tt.topic, tt.data, active, ok, tt.active, tt.isMotion)
		}
	}
}

func TestRecordedFaultsBecomeErrors(t *testing.T) {
	tests := []struct {
		file         string
		unauthorized bool
		notSupported bool
		subcode      string
	}{
		{"faults/Fault_NotAuthorized.xml", true, false, "NotAuthorized"},
		{"faults/Fault_ActionNotSupported_gsoap.xml", false, true, "ActionNotSupported"},
		{"ex_onvif-minimal/Fault_NoProfile.xml", false, false, "NoProfile"},
		{"pelco-d6230l/events.PullMessages.Error.xml", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := parseEnvelope(readFixture(t, strings.Split(tt.file, "/")...))
			if err != nil {
				t.Fatal(err)
			}
			f := faultOf(body)
			if f == nil {
				t.Fatal("no fault found")
			}
			if f.Reason == "" {
				t.Error("fault without reason")
			}
			if tt.subcode != "" && f.Subcode != tt.subcode {
				t.Errorf("subcode %q, want %q", f.Subcode, tt.subcode)
			}
			if errors.Is(f, ErrUnauthorized) != tt.unauthorized || errors.Is(f, ErrNotSupported) != tt.notSupported {
				t.Errorf("%v: unauthorized %v, not supported %v", f, errors.Is(f, ErrUnauthorized), errors.Is(f, ErrNotSupported))
			}
		})
	}
}

// hostileServer answers every request with body.
func hostileServer(t *testing.T, status int, body string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{XAddr: srv.URL + "/onvif/device_service", Username: "admin", Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHostileAnswersGiveClearErrors(t *testing.T) {
	const env = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>`
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"larger than 1 MiB", 200, env + strings.Repeat("<a>x</a>", 200000) + `</s:Body></s:Envelope>`, "larger than 1 MiB"},
		{"nested 100000 deep", 200, env + strings.Repeat("<a>", 100000), "nested deeper than 64"},
		{"too many elements", 200, env + strings.Repeat("<a/>", 30000) + `</s:Body></s:Envelope>`,
			"more than 20000 elements"},
		{"an HTML login page", 200, `<html><body>Login</body></html>`, "not a SOAP envelope (root element <html>)"},
		{"no Body", 200, `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>`, "without a Body"},
		{"truncated", 200, env + `<tds:GetDeviceInformationResponse><tds:Manu`, "malformed XML"},
		{"entity expansion", 200, `<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>` + env +
			`&b;</s:Body></s:Envelope>`, "malformed XML"},
		{"empty", 200, ``, "malformed XML: no root element"},
		{"HTTP 500 without SOAP", 500, `Internal Server Error`, "HTTP 500"},
		{"empty body element", 200, env + `</s:Body></s:Envelope>`, "empty SOAP body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := hostileServer(t, tt.status, tt.body)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := c.GetDeviceInformation(ctx)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), c.XAddr()) {
				t.Errorf("error %q does not say %q and name the device", err, tt.want)
			}
		})
	}
}

func TestForeignNamespacesAndPrefixesAreTolerated(t *testing.T) {
	// SOAP 1.1 envelope namespace, odd prefixes, an undeclared prefix and a default namespace:
	// all seen in the field. Local names are what count.
	body := `<?xml version="1.0" encoding="utf-16"?>
<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"><SOAP:Body>
<GetDeviceInformationResponse xmlns="urn:vendor:nonsense"><Manufacturer>ACME</Manufacturer>
<x:Model>Cam 3000</x:Model><FirmwareVersion> 1.2.3 </FirmwareVersion><SerialNumber>S1</SerialNumber>
<HardwareId>H1</HardwareId></GetDeviceInformationResponse></SOAP:Body></SOAP:Envelope>`
	c := hostileServer(t, 200, body)
	info, err := c.GetDeviceInformation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := DeviceInfo{Manufacturer: "ACME", Model: "Cam 3000", Firmware: "1.2.3", Serial: "S1", HardwareID: "H1"}
	if info != want {
		t.Errorf("got %+v, want %+v", info, want)
	}
}

func TestNotAuthorizedFaultNamesTheDevice(t *testing.T) {
	c := hostileServer(t, 400, string(readFixture(t, "faults", "Fault_NotAuthorized.xml")))
	_, err := c.GetDeviceInformation(context.Background())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), c.XAddr()) ||
		!strings.Contains(err.Error(), "refused") {
		t.Errorf("err = %v", err)
	}
}

func TestSlowDeviceTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{XAddr: srv.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDeviceInformation(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
}

func TestHTTPBasicIsUsedWhenThatIsAllTheDeviceOffers(t *testing.T) {
	info := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><GetDeviceInformationResponse>` +
		`<Manufacturer>Old</Manufacturer></GetDeviceInformationResponse></s:Body></s:Envelope>`
	var sawBasic bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="cam"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		sawBasic = true
		_, _ = w.Write([]byte(info))
	}))
	defer srv.Close()
	for _, tt := range []struct {
		password string
		ok       bool
	}{{"pw", true}, {"nope", false}} {
		// The camera is marked auth: basic; without the mark see TestBasicOverHTTPNeedsTheMark.
		c, _ := NewClient(ClientConfig{XAddr: srv.URL, Username: "admin", Password: tt.password, AllowBasic: true})
		got, err := c.GetDeviceInformation(context.Background())
		if tt.ok && (err != nil || got.Manufacturer != "Old" || !sawBasic) {
			t.Errorf("password %q: %+v, %v", tt.password, got, err)
		}
		if !tt.ok && (!errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HTTP basic")) {
			t.Errorf("password %q: err = %v, want refused after HTTP basic", tt.password, err)
		}
	}
}

func TestSnapshotRefusesHugeAndNonJPEGAnswers(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"over 4 MiB", append([]byte{0xFF, 0xD8}, make([]byte, MaxSnapshotBytes)...), "larger than"},
		{"an HTML error page", []byte("<html>busy</html>"), "not a JPEG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(tt.body) }))
			defer srv.Close()
			c, _ := NewClient(ClientConfig{XAddr: srv.URL})
			_, err := c.Snapshot(context.Background(), srv.URL+"/snap.jpg")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
