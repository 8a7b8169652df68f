package sim

import (
	"bytes"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRTMPStreamName(t *testing.T) {
	tests := []struct {
		url, wantName, wantQuery string
	}{
		{"rtmp://h/cam1", "cam1", ""},
		{"rtmp://h/static/cam1", "cam1", ""},
		{"rtmp://h/rtmp/cam1", "cam1", ""},
		{"rtmp://h/live/cam1", "live/cam1", ""},
		{"rtmp://h/static/cam1?password=s", "cam1", "password=s"},
		{"rtmp://h/static?password=s/cam1", "cam1", "password=s"},
		{"rtmp://h/live?a=1/cam1?password=s", "live/cam1", "a=1&password=s"},
		{"rtmp://h/", "", ""},
		// ffmpeg and camgate split rtmp://h/cam1?password=s as app cam1, stream cam1?password=s.
		{"rtmp://h/cam1/cam1?password=s", "cam1", "password=s"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		name, query := rtmpStreamName(u)
		if name != tt.wantName || query != tt.wantQuery {
			t.Errorf("%s: (%q, %q), want (%q, %q)", tt.url, name, query, tt.wantName, tt.wantQuery)
		}
	}
}

func FuzzRTMPStreamName(f *testing.F) {
	f.Add("rtmp://h/static?password=s/cam1")
	f.Add("rtmp://h/live/cam1?password=x")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		name, _ := rtmpStreamName(u)
		if strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
			t.Fatalf("%q: name %q has an outer slash", raw, name)
		}
	})
}

func TestStreamsAPI(t *testing.T) {
	t.Parallel()
	m := startMediaServer(t, MediaServerConfig{APIAddr: "127.0.0.1:0", APIUser: "admin", APIPass: "pw"})
	do := func(method, name, user, pass, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, m.APIURL()+"/streams/"+name, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		what                     string
		method, name, user, pass string
		body                     string
		want                     int
	}{
		{"no credentials", "PUT", "cam1", "", "", `{"name":"cam1"}`, 401},
		{"wrong password", "PUT", "cam1", "admin", "no", `{"name":"cam1"}`, 401},
		{"unknown stream", "GET", "cam1", "admin", "pw", "", 404},
		{"create without name", "PUT", "cam1", "admin", "pw", `{"title":"Door"}`, 400},
		{"not JSON", "PUT", "cam1", "admin", "pw", `{`, 400},
		{"create", "PUT", "cam1", "admin", "pw",
			`{"name":"cam1","title":"Door","inputs":[{"url":"publish://"}],"password":"s"}`, 200},
		{"update title only", "PUT", "cam1", "admin", "pw", `{"title":"Front door"}`, 200},
		{"read back", "GET", "cam1", "admin", "pw", "", 200},
		{"delete is not served", "DELETE", "cam1", "admin", "pw", "", 405},
	}
	for _, s := range steps {
		if got := do(s.method, s.name, s.user, s.pass, s.body); got != s.want {
			t.Errorf("%s: %s %s = %d, want %d", s.what, s.method, s.name, got, s.want)
		}
	}
	s, ok := m.StreamConfig("cam1")
	if !ok || s.Title != "Front door" || s.Password != "s" || len(s.Inputs) != 1 || s.Inputs[0].URL != "publish://" ||
		s.Updates != 1 {
		t.Errorf("stream after create and update = %+v, %v", s, ok)
	}
}

// publishRTMP runs ffmpeg publishing 4 seconds (the reader's 2 s analysis and then some) of H.264
// with the audio codec acodec as FLV to url and returns its exit.
func publishRTMP(t *testing.T, url, acodec string) error {
	t.Helper()
	bin := needTool(t, "ffmpeg", "ffmpeg")
	cmd := exec.CommandContext(t.Context(), bin, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", acodec, "-ac", "1", "-f", "flv", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		t.Logf("ffmpeg %s: %v: %s", url, err, stderr.String())
	}
	return err
}

// TestMediaServerAdmitsAsFlussonic publishes with ffmpeg in each URL form, with and without a
// stream's password, and in codecs Flussonic does not take over that protocol.
func TestMediaServerAdmitsAsFlussonic(t *testing.T) {
	t.Parallel()
	m := startMediaServer(t, MediaServerConfig{RTMPAddr: "127.0.0.1:0", RequireStream: true})
	for _, name := range []string{"r1", "r2", "r3", "r4", "r5", "live/r6", "s1", "s2", "s3"} {
		m.AddStream(Stream{Name: name, Inputs: []Input{{URL: "publish://"}}, Password: "pw"})
	}
	m.AddStream(Stream{Name: "pulled", Inputs: []Input{{URL: "rtsp://camera/"}}})
	tests := []struct {
		what, proto, url, acodec string
		stream                   string
		wantOK                   bool
	}{
		{"rtsp with the password", "rtsp", m.URL() + "s1?password=pw", "aac", "s1", true},
		{"rtsp without the password", "rtsp", m.URL() + "s2", "aac", "s2", false},
		{"rtsp opus", "rtsp", m.URL() + "s3?password=pw", "libopus", "s3", false},
		{"rtsp to an unconfigured name", "rtsp", m.URL() + "nosuch", "aac", "nosuch", false},
		{"rtsp to a pulled stream", "rtsp", m.URL() + "pulled", "aac", "pulled", false},
		{"rtmp://host/NAME", "rtmp", m.RTMPURL() + "r1?password=pw", "aac", "r1", true},
		{"rtmp://host/static/NAME", "rtmp", m.RTMPURL() + "static/r2?password=pw", "aac", "r2", true},
		{"rtmp://host/APP/NAME", "rtmp", m.RTMPURL() + "live/r6?password=pw", "aac", "live/r6", true},
		{"rtmp wrong password", "rtmp", m.RTMPURL() + "r3?password=no", "aac", "r3", false},
		{"rtmp pcma", "rtmp", m.RTMPURL() + "r4?password=pw", "pcm_alaw", "r4", false},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			var err error
			if tt.proto == "rtsp" {
				p := publish(t, tt.url, "tcp", "libx264", tt.acodec, 1)
				err = p.wait(t, 60*time.Second)
			} else {
				_ = publishRTMP(t, tt.url, tt.acodec)
			}
			st, _ := m.Stream(tt.stream)
			published := st.Publishes > 0
			if published != tt.wantOK {
				t.Errorf("published = %v (ffmpeg: %v), want %v; refusals %v", published, err, tt.wantOK, m.Refusals()[tt.stream])
			}
			if !tt.wantOK && len(m.Refusals()[tt.stream]) == 0 {
				t.Errorf("no refusal recorded")
			}
		})
	}
}
