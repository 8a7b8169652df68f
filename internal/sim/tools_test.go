package sim

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/testtool"
)

// needTool returns the path of a real peer program; without it the test fails in CI (naming the
// Debian package to install) and is skipped elsewhere.
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	return testtool.Need(t, debianPackage, name)
}

// runSim starts a long-lived part and stops it at the end of the test, failing the test if Run
// returns an error or does not return.
func runSim(t *testing.T, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
}

type probeStream struct {
	Index     int    `json:"index"`
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

type probePacket struct {
	StreamIndex int    `json:"stream_index"`
	PTS         *int64 `json:"pts"`
	DTS         *int64 `json:"dts"`
	Flags       string `json:"flags"`
	Size        string `json:"size"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Packets []probePacket `json:"packets"`
}

// ffprobe reads url for about seconds and returns its streams and packets.
func ffprobe(t *testing.T, url, transport string, seconds int) probeResult {
	t.Helper()
	bin := needTool(t, "ffprobe", "ffmpeg")
	args := []string{"-v", "error", "-rtsp_transport", transport, "-timeout", "10000000"}
	if seconds > 0 {
		args = append(args, "-read_intervals", "%+"+strconv.Itoa(seconds), "-show_packets")
	} else {
		// The SDP and a keyframe name every track; no need for ffprobe's default 5 s.
		args = append(args, "-analyzeduration", "1500000")
	}
	args = append(args, "-show_streams", "-of", "json", url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v: %s", url, err, stderr)
	}
	var r probeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return r
}

func (r probeResult) stream(codecType string) (probeStream, bool) {
	for _, s := range r.Streams {
		if s.CodecType == codecType {
			return s, true
		}
	}
	return probeStream{}, false
}

// ffprobeErr runs ffprobe on url and returns its failure, if any.
func ffprobeErr(t *testing.T, url string) error {
	t.Helper()
	bin := needTool(t, "ffprobe", "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, bin, "-v", "error", "-rtsp_transport", "tcp", "-show_streams", url).Run()
}
