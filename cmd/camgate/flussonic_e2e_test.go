package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// This file holds the acceptance tests of issue 14 that need a whole camgate: publishing in
// every URL form Flussonic takes, the tracks it refuses, the streams API and per-camera stream
// names. Point 1 (events) is in motion_e2e_test.go and onvif_e2e_test.go.

// strictFlussonic is a media server stand-in that takes publishes only to configured streams
// (no catch-all template), with RTMP and, given a user, the streams API.
func strictFlussonic(t *testing.T, apiUser, apiPass string) *sim.MediaServer {
	t.Helper()
	cfg := sim.MediaServerConfig{RequireStream: true, RTMPAddr: "127.0.0.1:0"}
	if apiUser != "" {
		cfg.APIAddr, cfg.APIUser, cfg.APIPass = "127.0.0.1:0", apiUser, apiPass
	}
	m, err := sim.NewMediaServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runUntilEnd(t, m.Run)
	return m
}

// clipCamera is an RTSP camera serving the H.264+AAC clip until the test ends.
func clipCamera(t *testing.T) string {
	t.Helper()
	c, err := sim.NewCamera(sim.CameraConfig{})
	if err != nil {
		t.Fatal(err)
	}
	runUntilEnd(t, c.Run)
	return c.URL()
}

// runUntilEnd runs run until the test ends and waits for it to return.
func runUntilEnd(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// pageConfig is a camgate.yaml with the page on webAddr, a flussonic block and cameras.
func pageConfig(gateway, webAddr, flussonic string, cameras ...string) string {
	return fmt.Sprintf(`gateway_id: %s
data_dir: DATA_DIR
log: {level: debug}
web: {listen: '%s'}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
flussonic:
%s
cameras:
%s`, gateway, webAddr, flussonic, strings.Join(cameras, ""))
}

// fullCamera is a camera as the page's JSON gives it.
type fullCamera struct {
	CameraID   string `json:"camera_id"`
	Name       string `json:"name"`
	StreamName string `json:"stream_name"`
	PlayURL    string `json:"play_url"`
	Relaying   bool   `json:"relaying"`
	LastError  string `json:"last_error"`
}

func (p *page) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := p.c.Get(p.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func (p *page) camera(t *testing.T, id string) fullCamera {
	t.Helper()
	var r struct{ Cameras []fullCamera }
	p.getJSON(t, "/api/cameras", &r)
	for _, c := range r.Cameras {
		if c.CameraID == id {
			return c
		}
	}
	return fullCamera{}
}

// Acceptance 4 of issue 14: with flussonic.api set, each camera's stream is created with
// publish:// and the camera's name before anything can publish to it (the stand-in has no
// catch-all template); a 401 from the API shows on the page and relaying still runs.
func TestRunCreatesStreamsThroughTheMediaServerAPI(t *testing.T) {
	t.Run("created, then published", func(t *testing.T) {
		flussonic := strictFlussonic(t, "admin", "edit-pw")
		web := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		fl := fmt.Sprintf("  publish: '%s{stream_name}?password=pub-pw'\n"+
			"  api: {url: '%s', username: admin, password: edit-pw}",
			flussonic.URL(), flussonic.APIURL())
		runCamgate(t, pageConfig("gwz", web, fl, fmt.Sprintf("  - {id: door, name: Front door, url: '%s'}\n", clipCamera(t))))
		waitFor(t, 60*time.Second, "gwz-door published", func() bool {
			st, _ := flussonic.Stream("gwz-door")
			return st.Publishing && st.VideoFrames > 10
		})
		s, ok := flussonic.StreamConfig("gwz-door")
		if !ok || s.Title != "Front door" || s.Password != "pub-pw" || len(s.Inputs) != 1 || s.Inputs[0].URL != "publish://" {
			t.Errorf("stream at the server = %+v, %v; want title Front door, input publish://, password pub-pw", s, ok)
		}
		// A publish that raced the PUT was refused for want of a stream, never for anything else.
		for _, r := range flussonic.Refusals()["gwz-door"] {
			if !strings.Contains(r, "no stream") {
				t.Errorf("publish refused: %s", r)
			}
		}
	})
	t.Run("401 shows, relaying runs", func(t *testing.T) {
		flussonic := strictFlussonic(t, "admin", "edit-pw")
		// Made by hand, as an owner without a working API login would.
		flussonic.AddStream(sim.Stream{Name: "gwy-door", Inputs: []sim.Input{{URL: "publish://"}}})
		web := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		fl := fmt.Sprintf("  publish: '%s'\n  api: {url: '%s', username: admin, password: wrong}",
			flussonic.URL(), flussonic.APIURL())
		_, path := runCamgate(t, pageConfig("gwy", web, fl, fmt.Sprintf("  - {id: door, url: '%s'}\n", clipCamera(t))))
		waitFor(t, 60*time.Second, "gwy-door published", func() bool {
			st, _ := flussonic.Stream("gwy-door")
			return st.Publishing && st.VideoFrames > 10
		})
		p := loginPage(t, "http://"+web, filepath.Dir(path))
		var status struct {
			Flussonic struct {
				State     string `json:"state"`
				LastError string `json:"last_error"`
			} `json:"flussonic"`
		}
		waitFor(t, 20*time.Second, "the 401 on the page", func() bool {
			p.getJSON(t, "/api/status", &status)
			return strings.Contains(status.Flussonic.LastError, "401")
		})
		if c := p.camera(t, "door"); !strings.Contains(c.LastError, "401") || !c.Relaying {
			t.Errorf("camera on the page = %+v, want relaying with the 401 as its last_error", c)
		}
		if s, _ := flussonic.StreamConfig("gwy-door"); s.Updates != 0 {
			t.Errorf("the stream was changed with a wrong password: %+v", s)
		}
	})
}

// Acceptance 2 of issue 14: a relay publishes H.264+AAC through each publish URL form to the
// stand-in, and the same form once to ffmpeg's own listener, so the stand-in is not the only
// judge; a wrong publish password is refused and shows as the camera's last_error.
func TestRunPublishesInEveryFlussonicURLForm(t *testing.T) {
	cam := clipCamera(t)
	forms := []struct {
		name    string
		publish string // host:port is filled in, as HOST
		stream  string // the stream Flussonic files it under
	}{
		{"rtsp with {stream_name} and password", "rtsp://HOST/{stream_name}?password=pub-pw", "gwf-cam1"},
		{"rtmp://host/", "rtmp://HOST/?password=pub-pw", "gwf-cam1"},
		{"rtmp://host/static/", "rtmp://HOST/static/?password=pub-pw", "gwf-cam1"},
		{"rtmp://host/live/", "rtmp://HOST/live/?password=pub-pw", "live/gwf-cam1"},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			flussonic := strictFlussonic(t, "", "")
			flussonic.AddStream(sim.Stream{Name: f.stream, Inputs: []sim.Input{{URL: "publish://"}}, Password: "pub-pw"})
			host := strings.TrimSuffix(strings.TrimPrefix(flussonic.URL(), "rtsp://"), "/")
			if strings.HasPrefix(f.publish, "rtmp") {
				host = strings.TrimSuffix(strings.TrimPrefix(flussonic.RTMPURL(), "rtmp://"), "/")
			}
			d, _ := runCamgate(t, relayConfig("gwf", "'"+strings.Replace(f.publish, "HOST", host, 1)+"'",
				cameraYAML("cam1", cam, true)))
			waitFor(t, 60*time.Second, f.stream+" published", func() bool {
				st, _ := flussonic.Stream(f.stream)
				return st.Publishing && st.VideoFrames > 10 && st.AudioPackets > 5
			})
			if st, _ := flussonic.Stream(f.stream); !slices.Equal(st.Codecs, []string{"h264", "aac"}) {
				t.Errorf("codecs at the stand-in %v, want h264 aac", st.Codecs)
			}
			d.stop(t, syscall.SIGTERM, 10*time.Second)

			// ffmpeg's listener, in the same form.
			port := freePort(t)
			out := filepath.Join(t.TempDir(), "got.mkv")
			ff := needTool(t, "ffmpeg", "ffmpeg")
			var listen *proc
			publish := strings.Replace(f.publish, "HOST", fmt.Sprintf("127.0.0.1:%d", port), 1)
			if strings.HasPrefix(f.publish, "rtmp") {
				listen = start(t, ff, "-hide_banner", "-loglevel", "warning", "-y", "-listen", "1",
					"-i", fmt.Sprintf("rtmp://127.0.0.1:%d/", port)+strings.TrimPrefix(path(f.publish), "/")+"gwf-cam1",
					"-c", "copy", out)
			} else {
				listen = ffmpegReceiver(t, fmt.Sprintf("rtsp://127.0.0.1:%d/gwf-cam1", port), out)
			}
			// No probe of the port: ffmpeg's listener takes one connection only. camgate
			// retries until it listens.
			d2, _ := runCamgate(t, relayConfig("gwf", "'"+publish+"'", cameraYAML("cam1", cam, true)))
			time.Sleep(8 * time.Second)
			d2.stop(t, syscall.SIGTERM, 10*time.Second)
			if err := listen.wait(t, 30*time.Second); err != nil {
				t.Logf("ffmpeg listener: %v", err)
			}
			streams, _ := probeFile(t, out)
			var names []string
			for _, s := range streams {
				names = append(names, s.CodecName)
			}
			if !slices.Equal(names, []string{"h264", "aac"}) {
				t.Errorf("ffmpeg's listener got %v, want h264 aac", names)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		flussonic := strictFlussonic(t, "", "")
		flussonic.AddStream(sim.Stream{Name: "gwp-cam1", Inputs: []sim.Input{{URL: "publish://"}}, Password: "pub-pw"})
		web := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		_, cfgPath := runCamgate(t, pageConfig("gwp", web, "  publish: '"+flussonic.RTMPURL()+"?password=nope'",
			cameraYAML("cam1", cam, true)))
		p := loginPage(t, "http://"+web, filepath.Dir(cfgPath))
		waitFor(t, 60*time.Second, "the refusal as last_error", func() bool {
			return p.camera(t, "cam1").LastError != "" && len(flussonic.Refusals()["gwp-cam1"]) > 0
		})
		c := p.camera(t, "cam1")
		t.Logf("last_error: %s", c.LastError)
		if c.Relaying || !strings.HasPrefix(c.LastError, "upstream") {
			t.Errorf("camera = %+v, want not relaying and an upstream last_error", c)
		}
		if st, _ := flussonic.Stream("gwp-cam1"); st.Publishes != 0 {
			t.Errorf("published with a wrong password: %+v", st)
		}
	})
}

// path is the path of a publish form with HOST as its host.
func path(publish string) string {
	_, rest, _ := strings.Cut(publish, "HOST")
	rest, _, _ = strings.Cut(rest, "?")
	return rest
}

// Acceptance 3 of issue 14: an Opus camera relayed over RTSP arrives video-only and its state
// names the dropped track; an H.265 camera over RTMP is refused with a clear last_error. The
// strict stand-in would refuse either track, so none was sent.
func TestRunLeavesOutTracksFlussonicRefuses(t *testing.T) {
	cases := []struct {
		name           string
		vcodec, acodec string
		rtmp           bool
		wantCodecs     []string // at the stand-in; nil = nothing published
		wantError      string   // in the camera's last_error
	}{
		{"opus over rtsp", "h264", "opus", false, []string{"h264"},
			"opus audio left out: Flussonic does not take it over RTSP"},
		{"h265 over rtmp", "h265", "aac", true, nil, "left out: Flussonic does not take it over RTMP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			source, err := sim.NewMediaServer(sim.MediaServerConfig{AnyCodec: true})
			if err != nil {
				t.Fatal(err)
			}
			runUntilEnd(t, source.Run)
			ffmpegCamera(t, source.URL()+"cam", tc.vcodec, tc.acodec, 0)
			flussonic := strictFlussonic(t, "", "")
			flussonic.AddStream(sim.Stream{Name: "gwc-cam1", Inputs: []sim.Input{{URL: "publish://"}}})
			publish := flussonic.URL()
			if tc.rtmp {
				publish = flussonic.RTMPURL()
			}
			web := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			_, cfgPath := runCamgate(t, pageConfig("gwc", web, "  publish: '"+publish+"'",
				cameraYAML("cam1", source.URL()+"cam", true)))
			p := loginPage(t, "http://"+web, filepath.Dir(cfgPath))
			waitFor(t, 60*time.Second, "the dropped track in last_error", func() bool {
				return strings.Contains(strings.ToLower(p.camera(t, "cam1").LastError), strings.ToLower(tc.wantError))
			})
			if tc.wantCodecs != nil {
				waitFor(t, 30*time.Second, "video at the stand-in", func() bool {
					st, _ := flussonic.Stream("gwc-cam1")
					return st.Publishing && st.VideoFrames > 10
				})
			} else {
				time.Sleep(3 * time.Second) // time for a publish that should not happen
			}
			st, _ := flussonic.Stream("gwc-cam1")
			if !slices.Equal(st.Codecs, tc.wantCodecs) {
				t.Errorf("stand-in got tracks %v, want %v", st.Codecs, tc.wantCodecs)
			}
			if r := flussonic.Refusals()["gwc-cam1"]; len(r) > 0 {
				t.Errorf("the stand-in had to refuse: %v", r)
			}
			t.Logf("last_error: %s", p.camera(t, "cam1").LastError)
		})
	}
}

// Acceptance 5 of issue 14: a camera given its own stream_name by set_camera republishes under
// it; the other camera's publish is not touched; the registration carries the new name and
// play URL.
func TestRunRepublishesUnderTheStreamNameSetByCommand(t *testing.T) {
	b := startBroker(t, freePort(t), "")
	sub := subscribe(t, b.port, "", "camgate/gwn/#")
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	cam := clipCamera(t)
	fl := fmt.Sprintf("  publish: '%s'\n  play: 'rtsp://watcher.example:554/'\n", flussonic.URL())
	cfg := uplinkConfig("gwn", b.url(), "", nil, fl)
	runCamgate(t, cfg)
	const p = "camgate/gwn"
	waitFor(t, 20*time.Second, "status online", func() bool {
		return strings.Contains(string(retained(t, b.port, p+"/status")[p+"/status"]), `"online"`)
	})
	for i, id := range []string{"cam1", "cam2"} {
		publish(t, b.port, p+"/cmd/add_camera", fmt.Sprintf(`{"id":"a%d","camera_id":"%s","url":"%s"}`, i, id, cam))
	}
	waitFor(t, 60*time.Second, "both cameras published", func() bool {
		a, _ := flussonic.Stream("gwn-cam1")
		b, _ := flussonic.Stream("gwn-cam2")
		return a.Publishing && b.Publishing && a.VideoFrames > 10 && b.VideoFrames > 10
	})
	publish(t, b.port, p+"/cmd/set_camera", `{"id":"s1","camera_id":"cam1","stream_name":"watcher/door-7"}`)
	waitFor(t, 10*time.Second, "the set_camera reply", func() bool {
		m, ok := sub.last(p + "/cmd/set_camera/reply")
		return ok && strings.Contains(string(m.Payload), `"ok":true`)
	})
	waitFor(t, 60*time.Second, "cam1 under its own name", func() bool {
		st, _ := flussonic.Stream("watcher/door-7")
		return st.Publishing && st.VideoFrames > 10
	})
	if st, _ := flussonic.Stream("gwn-cam1"); st.Publishing {
		t.Error("cam1 still publishes under its old name")
	}
	if st, _ := flussonic.Stream("gwn-cam2"); st.Publishes != 1 || !st.Publishing {
		t.Errorf("cam2 was touched: %+v", st)
	}
	var reg struct {
		StreamName string `json:"stream_name"`
		PlayURL    string `json:"play_url"`
	}
	waitFor(t, 10*time.Second, "the registration with the new name", func() bool {
		if json.Unmarshal(retained(t, b.port, p+"/cameras/cam1/config")[p+"/cameras/cam1/config"], &reg) != nil {
			return false // not retained yet
		}
		return reg.StreamName == "watcher/door-7"
	})
	if reg.PlayURL != "rtsp://watcher.example:554/watcher/door-7" {
		t.Errorf("play_url = %q, want flussonic.play + the stream name", reg.PlayURL)
	}
}
