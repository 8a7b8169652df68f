package onvif

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtureDir holds recorded answers of real cameras (provenance in its SOURCES.md).
const fixtureDir = "testdata/fixtures"

func fixturePath(t testing.TB, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{fixtureDir}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s missing: %v", p, err)
	}
	return p
}

// fixtureServer answers each SOAP request with the vendor directory's recorded answer for that
// operation, or with the ActionNotSupported fault a real camera sends for what is not recorded.
func fixtureServer(t *testing.T, vendor string) *httptest.Server {
	t.Helper()
	dir := fixturePath(t, vendor)
	notSupported, err := os.ReadFile(fixturePath(t, "faults", "Fault_ActionNotSupported_gsoap.xml"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		body, err := parseEnvelope(data)
		if err != nil || len(body.Children) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		op := body.Children[0]
		var names []string
		switch op.Space {
		case nsMedia2:
			names = []string{"media2." + op.Name}
		case nsPTZ:
			names = []string{"ptz." + op.Name}
		case nsEvents:
			names = []string{"events." + op.Name}
		case nsMedia:
			names = []string{op.Name, "media." + op.Name}
		default:
			names = []string{op.Name, "device." + op.Name}
		}
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		for _, n := range names {
			if answer, err := os.ReadFile(filepath.Join(dir, n+".xml")); err == nil {
				_, _ = w.Write(answer)
				return
			}
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(notSupported)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestInventoryOfRecordedCameras(t *testing.T) {
	tests := []struct {
		vendor       string
		manufacturer string
		model        string
		serial       string
		mac          string
		profiles     int
		firstCodec   string
		firstWidth   int
		mainPath     string // path and query of the main stream URI
		snapshotPath string // "" when the camera's recorded answer is unusable
		events       bool
	}{
		{"axis-m2025le", "AXIS", "M2025-LE", "B8A44F26437D", "", 2, "H264", 1920,
			"/onvif-media/media.amp?profile=profile_1_h264&sessiontimeout=60&streamtype=unicast",
			"/onvif-cgi/jpg/image.cgi?resolution=1920x1080&compression=30", true},
		{"axis-q6045e", "AXIS", "AXIS Q6045-E", "00408CFAB754", "00:40:8c:fa:b7:54", 2, "H264", 1280,
			"/onvif-media/media.amp?profile=profile_1_jpeg&sessiontimeout=60&streamtype=unicast",
			"/onvif-cgi/jpg/image.cgi?resolution=1280x720&compression=20", true},
		{"bosch", "Bosch", "FLEXIDOME indoor 5100i IR", "404754734001050102", "", 4, "H264", 1920,
			"/rtsp_tunnel?p=0&line=1&inst=1&vcd=2", "/snap.jpg?JpegCam=1", true},
		{"pelco-d6230l", "Pelco", "D6230L", "J250117", "00:04:7d:0e:b8:5c", 2, "H264", 1920,
			"/stream2_v", "/jpeg", true},
		{"gsoap-mockup", "Mockup Manufacturer", "Mockup Model", "00000000", "28:57:be:65:7d:d5", 1, "H264", 1920,
			"/h264main", "/onvif-cgi/jpg/image.cgi?resolution=800x600&compression=20&camera=1", true},
	}
	for _, tt := range tests {
		t.Run(tt.vendor, func(t *testing.T) {
			srv := fixtureServer(t, tt.vendor)
			c, err := NewClient(ClientConfig{XAddr: srv.URL + "/onvif/device_service", Username: "admin", Password: "pw"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d, err := Inventory(ctx, c)
			if err != nil {
				t.Fatalf("Inventory: %v", err)
			}
			srvURL, _ := url.Parse(srv.URL)
			if d.Manufacturer != tt.manufacturer || d.Model != tt.model || d.Serial != tt.serial {
				t.Errorf("device = %q %q %q, want %q %q %q",
					d.Manufacturer, d.Model, d.Serial, tt.manufacturer, tt.model, tt.serial)
			}
			if d.MAC != tt.mac {
				t.Errorf("MAC = %q, want %q", d.MAC, tt.mac)
			}
			if len(d.Profiles) != tt.profiles {
				t.Fatalf("%d profiles, want %d: %+v", len(d.Profiles), tt.profiles, d.Profiles)
			}
			if p := d.Profiles[0]; p.Codec != tt.firstCodec || p.Width != tt.firstWidth || p.Token == "" {
				t.Errorf("first profile = %+v, want codec %s width %d", p, tt.firstCodec, tt.firstWidth)
			}
			main, err := url.Parse(d.MainStream)
			if err != nil || main.Scheme != "rtsp" || main.Hostname() != srvURL.Hostname() {
				t.Errorf("main stream %q: want rtsp on the device's host %s", d.MainStream, srvURL.Hostname())
			} else if got := main.RequestURI(); got != tt.mainPath {
				t.Errorf("main stream path %q, want %q", got, tt.mainPath)
			}
			if tt.snapshotPath == "" {
				if d.SnapshotURI != "" {
					t.Errorf("snapshot URI %q from an unusable answer", d.SnapshotURI)
				}
			} else if snap, err := url.Parse(d.SnapshotURI); err != nil || snap.Host != srvURL.Host ||
				snap.RequestURI() != tt.snapshotPath {
				t.Errorf("snapshot URI %q, want http://%s%s", d.SnapshotURI, srvURL.Host, tt.snapshotPath)
			}
			if d.HasEvents != tt.events || (d.HasEvents && !strings.HasPrefix(d.EventsXAddr, srv.URL)) {
				t.Errorf("events = %v %q, want %v on %s", d.HasEvents, d.EventsXAddr, tt.events, srv.URL)
			}
		})
	}
}

func TestRecordedProfilesOfPartialSets(t *testing.T) {
	tests := []struct {
		vendor     string
		profiles   int
		codec      string
		width      int
		audioCodec string
	}{
		{"lorex", 2, "H264", 704, "G711"},
		{"dahua-oem-unattributed", 2, "H264", 2592, ""},
	}
	for _, tt := range tests {
		t.Run(tt.vendor, func(t *testing.T) {
			body, err := parseEnvelope(readFixture(t, tt.vendor, "GetProfiles.xml"))
			if err != nil {
				t.Fatal(err)
			}
			ps := parseProfiles(body.Children[0])
			if len(ps) != tt.profiles {
				t.Fatalf("%d profiles, want %d", len(ps), tt.profiles)
			}
			// Lorex's first profile has an empty VideoEncoderConfiguration: the first profile
			// with video is what matters.
			var video *Profile
			for i := range ps {
				if ps[i].Codec != "" {
					video = &ps[i]
					break
				}
			}
			if video == nil || video.Codec != tt.codec || video.Width != tt.width || video.AudioCodec != tt.audioCodec ||
				video.Token == "" {
				t.Errorf("first video profile %+v in %+v", video, ps)
			}
		})
	}
}

func TestRecordedDahuaCapabilitiesAndURIs(t *testing.T) {
	srv := fixtureServer(t, "dahua")
	c, err := NewClient(ClientConfig{XAddr: srv.URL + "/onvif/device_service"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc, err := c.GetCapabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Media != srv.URL+"/onvif/media_service" || svc.Events != srv.URL+"/onvif/event_service" {
		t.Errorf("services %+v", svc)
	}
	stream, err := c.GetStreamURI(ctx, "MediaProfile00001")
	if err != nil || stream != "rtsp://192.168.1.123:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif" {
		t.Errorf("stream URI %q, %v", stream, err)
	}
	if fixed := c.fixMediaURL(stream); !strings.HasPrefix(fixed, "rtsp://127.0.0.1:554/cam/realmonitor?") {
		t.Errorf("fixed stream URI %q", fixed)
	}
	snap, err := c.GetSnapshotURI(ctx, "MediaProfile00001")
	if err != nil || !strings.HasPrefix(snap, "http://192.168.1.123/onvifsnapshot/") {
		t.Errorf("snapshot URI %q, %v", snap, err)
	}
}
