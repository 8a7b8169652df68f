package sim

import (
	"bytes"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// publisher is ffmpeg publishing a test pattern into an RTSP URL.
type publisher struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// publish starts ffmpeg publishing seconds of a 25 fps test pattern (GOP 1 s) with the given
// encoders; extra goes before the output URL.
func publish(t *testing.T, url, transport, vcodec, acodec string, seconds int, extra ...string) *publisher {
	t.Helper()
	bin := needTool(t, "ffmpeg", "ffmpeg")
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
		"-t", strconv.Itoa(seconds), "-c:v", vcodec, "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", acodec, "-ac", "1"}
	switch vcodec {
	case "libx264":
		args = append(args, "-x264-params", "scenecut=0:bframes=0")
	case "libx265":
		args = append(args, "-x265-params", "scenecut=0:bframes=0:log-level=error")
	}
	args = append(args, extra...)
	args = append(args, "-f", "rtsp", "-rtsp_transport", transport, url)
	p := &publisher{cmd: exec.CommandContext(t.Context(), bin, args...), done: make(chan error, 1)}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start ffmpeg: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done //nolint:errcheck // killed just above: its exit status says only that
	})
	return p
}

// wait returns ffmpeg's exit (nil for success), failing the test if it takes over timeout.
func (p *publisher) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // keep it for Cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("ffmpeg still running after %v", timeout)
		return nil
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startMediaServer(t *testing.T, cfg MediaServerConfig) *MediaServer {
	t.Helper()
	m, err := NewMediaServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, m.Run)
	return m
}

func TestMediaServerCountsWhatFFmpegPublishes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		transport      string
		vcodec, acodec string
		extra          []string
		wantCodecs     []string
		wantProbe      []string // codec names as ffprobe reads the stream back
		// ffmpeg's RTSP muxer asks encoders for global headers, so parameter sets go only into
		// the SDP unless the encoder is told to repeat them in band.
		wantFirstKey bool
	}{
		{
			name: "h264+aac over tcp, parameter sets in band", transport: "tcp",
			vcodec: "libx264", acodec: "aac", extra: []string{"-bsf:v", "dump_extra"},
			wantCodecs: []string{"h264", "aac"}, wantProbe: []string{"h264", "aac"}, wantFirstKey: true,
		},
		{
			name: "h264+aac over tcp, parameter sets only in the SDP", transport: "tcp",
			vcodec: "libx264", acodec: "aac",
			wantCodecs: []string{"h264", "aac"}, wantProbe: []string{"h264", "aac"}, wantFirstKey: false,
		},
		{
			name: "h265+pcma over udp", transport: "udp",
			vcodec: "libx265", acodec: "pcm_alaw", extra: []string{"-bsf:v", "dump_extra"},
			wantCodecs: []string{"h265", "pcma"}, wantProbe: []string{"hevc", "pcm_alaw"}, wantFirstKey: true,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := startMediaServer(t, MediaServerConfig{})
			name := "cam" + strconv.Itoa(i+1)
			const seconds = 4
			p := publish(t, m.URL()+name, tt.transport, tt.vcodec, tt.acodec, seconds, tt.extra...)

			waitFor(t, 20*time.Second, "publishing", func() bool {
				st, _ := m.Stream(name)
				return st.Publishing
			})
			r := ffprobe(t, m.URL()+name, "tcp", 0)
			var got []string
			for _, s := range r.Streams {
				got = append(got, s.CodecName)
			}
			if !slices.Equal(got, tt.wantProbe) {
				t.Errorf("ffprobe read back %v, want %v", got, tt.wantProbe)
			}

			if err := p.wait(t, 30*time.Second); err != nil {
				t.Fatalf("ffmpeg: %v: %s", err, p.stderr.String())
			}
			waitFor(t, 10*time.Second, "publisher gone", func() bool {
				st, _ := m.Stream(name)
				return !st.Publishing
			})
			st, ok := m.Stream(name)
			if !ok {
				t.Fatalf("no stats for %s; have %v", name, m.Streams())
			}
			t.Logf("%+v", st)
			if st.VideoFramesPlayed == 0 || st.VideoFramesPlayed > st.VideoFrames {
				t.Errorf("VideoFramesPlayed = %d while ffprobe played %d published frames: want some, at most all",
					st.VideoFramesPlayed, st.VideoFrames)
			}
			if st.Players != 0 {
				t.Errorf("Players = %d after ffprobe left, want 0", st.Players)
			}
			if !slices.Equal(st.Codecs, tt.wantCodecs) {
				t.Errorf("Codecs = %v, want %v", st.Codecs, tt.wantCodecs)
			}
			if st.Publishes != 1 {
				t.Errorf("Publishes = %d, want 1", st.Publishes)
			}
			// Over UDP on a loaded machine a packet may be lost; over TCP every frame arrives.
			wantFrames, slack := uint64(seconds*25), uint64(0)
			if tt.transport == "udp" {
				slack = 5
			}
			if st.VideoFrames > wantFrames || st.VideoFrames+slack < wantFrames {
				t.Errorf("VideoFrames = %d, want %d", st.VideoFrames, wantFrames)
			}
			if st.KeyFrames < seconds-slack/5 || st.KeyFrames > seconds {
				t.Errorf("KeyFrames = %d, want %d (GOP 1 s)", st.KeyFrames, seconds)
			}
			if st.AudioPackets == 0 || st.Bytes == 0 || st.LastFrameAt.IsZero() {
				t.Errorf("AudioPackets = %d, Bytes = %d, LastFrameAt = %v, want audio and bytes counted",
					st.AudioPackets, st.Bytes, st.LastFrameAt)
			}
			if st.VideoBytes == 0 || st.AudioBytes == 0 || st.VideoBytes+st.AudioBytes != st.Bytes {
				t.Errorf("VideoBytes %d + AudioBytes %d, want both counted and adding up to Bytes %d",
					st.VideoBytes, st.AudioBytes, st.Bytes)
			}
			if st.FirstVideoFrameKey != tt.wantFirstKey {
				t.Errorf("FirstVideoFrameKey = %v, want %v", st.FirstVideoFrameKey, tt.wantFirstKey)
			}
		})
	}
}

func TestMediaServerRepublishReplacesPublisher(t *testing.T) {
	t.Parallel()
	m := startMediaServer(t, MediaServerConfig{})
	first := publish(t, m.URL()+"cam", "tcp", "libx264", "aac", 60)
	waitFor(t, 20*time.Second, "first publisher", func() bool {
		st, _ := m.Stream("cam")
		return st.Publishing && st.VideoFrames > 0
	})

	second := publish(t, m.URL()+"cam", "tcp", "libx264", "aac", 60)
	waitFor(t, 20*time.Second, "second publisher", func() bool {
		st, _ := m.Stream("/cam")
		return st.Publishes == 2 && st.Publishing
	})
	if err := first.wait(t, 20*time.Second); err == nil {
		t.Errorf("the replaced publisher exited cleanly, want it disconnected")
	}
	select {
	case err := <-second.done:
		t.Fatalf("the new publisher stopped: %v: %s", err, second.stderr.String())
	default:
	}
	before, _ := m.Stream("cam")
	waitFor(t, 20*time.Second, "frames from the new publisher", func() bool {
		st, _ := m.Stream("cam")
		return st.VideoFrames > before.VideoFrames+10
	})
	if r := ffprobe(t, m.URL()+"cam", "tcp", 0); len(r.Streams) != 2 {
		t.Errorf("players read %d tracks of the new publisher, want 2", len(r.Streams))
	}
}

func TestMediaServerPublishAuth(t *testing.T) {
	t.Parallel()
	m := startMediaServer(t, MediaServerConfig{PublishUser: "flu", PublishPass: "sonic"})
	base := strings.TrimPrefix(m.URL(), "rtsp://")
	tests := []struct {
		name, userinfo string
		wantOK         bool
	}{
		{"no credentials", "", false},
		{"wrong password", "flu:wrong@", false},
		{"right credentials", "flu:sonic@", true},
	}
	for i, tt := range tests {
		name := "auth" + strconv.Itoa(i)
		p := publish(t, "rtsp://"+tt.userinfo+base+name, "tcp", "libx264", "aac", 1)
		err := p.wait(t, 30*time.Second)
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: ffmpeg exit = %v, want ok = %v: %s", tt.name, err, tt.wantOK, p.stderr.String())
		}
		st, _ := m.Stream(name)
		if got := st.Publishes > 0; got != tt.wantOK {
			t.Errorf("%s: Publishes = %d, want published = %v", tt.name, st.Publishes, tt.wantOK)
		}
	}
}
