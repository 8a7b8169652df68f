package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// longGOPCamera publishes a test pattern into each URL like a "smart codec" camera: a keyframe
// only every gop frames at 25 fps, video at bitrate (constant, padded with filler data, when
// cbr), AAC audio. One encoding feeds every URL (ffmpeg's tee muxer), so eight cameras cost
// one encoder.
func longGOPCamera(t *testing.T, gop int, bitrate string, cbr bool, urls ...string) *proc {
	t.Helper()
	ff := needTool(t, "ffmpeg", "ffmpeg")
	args := []string{"-hide_banner", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-r", "25",
		"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0", "-b:v", bitrate}
	if cbr {
		args = append(args, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-x264-params", "nal-hrd=cbr")
	}
	args = append(args, "-c:a", "aac", "-ar", "16000", "-b:a", "32k", "-map", "0:v", "-map", "1:a")
	outs := make([]string, len(urls))
	for i, u := range urls {
		outs[i] = "[f=rtsp:rtsp_transport=tcp]" + u
	}
	args = append(args, "-f", "tee", strings.Join(outs, "|"))
	return start(t, ff, args...)
}

// Acceptance 1 of issue 15: a camera with a 4 s GOP relayed by `camgate run`, the server killed
// and brought back in the middle of a GOP. Without a cache the server would wait up to 4 s for
// the next keyframe; with it the first frame arrives within 0.5 s of the server accepting the
// session (a bound with a wide margin for a loaded machine: the cache is sent at once), it is a
// keyframe with its parameter sets, and the frames' timestamps never go backwards or jump.
func TestRunStartsUpstreamFromCachedGOP(t *testing.T) {
	camServer, _ := mediaServer(t, "127.0.0.1:0")
	flussonicAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	flussonic, stopFlussonic := mediaServer(t, flussonicAddr)
	camURL := camServer.URL() + "cam1"
	longGOPCamera(t, 100, "1M", false, camURL)
	runCamgate(t, relayConfig("gw", flussonic.URL(), cameraYAML("cam1", camURL, true)))
	waitFor(t, 40*time.Second, "more than a GOP relayed", func() bool {
		st, _ := flussonic.Stream("gw-cam1")
		return st.KeyFrames >= 2
	})

	for round := range 2 {
		// Well inside a GOP: the last keyframe went out about 1.5 s ago.
		waitFor(t, 10*time.Second, "a keyframe", func() bool {
			st, _ := flussonic.Stream("gw-cam1")
			return st.KeyFrames >= uint64(2+round)
		})
		time.Sleep(1500 * time.Millisecond)
		stopFlussonic()
		time.Sleep(time.Second)
		flussonic, stopFlussonic = mediaServer(t, flussonicAddr)
		waitFor(t, 15*time.Second, "video at the restarted server", func() bool {
			st, _ := flussonic.Stream("gw-cam1")
			return !st.FirstVideoAt.IsZero() && st.VideoFrames > 50
		})
		st, _ := flussonic.Stream("gw-cam1")
		took := st.FirstVideoAt.Sub(st.RecordedAt)
		t.Logf("round %d: first video %s after the server accepted the session; %+v", round, took, st)
		if took > 500*time.Millisecond {
			t.Errorf("round %d: first video %s after the server accepted the session, want within 0.5 s", round, took)
		}
		if !st.FirstVideoFrameKey {
			t.Errorf("round %d: the first frame was not a keyframe with its parameter sets", round)
		}
		if st.VideoTSBackwards != 0 || st.VideoTSMaxStep != 3600 {
			t.Errorf("round %d: %d frames went back in time and the largest step was %d; want 0 and 3600 (25 fps)",
				round, st.VideoTSBackwards, st.VideoTSMaxStep)
		}
	}
}

// Acceptance 5 of issue 15: eight cameras with 4 s GOPs at 2 Mbit/s relayed by one `camgate
// run`. The daemon's resident memory stays within the cache budget plus 16 MiB, and the budget
// bites: 6 MiB does not hold eight 1 MB GOPs, so some camera loses its cache, and its relay's
// Stats counter says so in the log line the relay writes from it.
func TestRunGOPCachesStayWithinBudget(t *testing.T) {
	const (
		cameras     = 8
		budget      = 6 << 20
		allowance   = 16 << 20
		measureTime = 20 * time.Second
	)
	camServer, _ := mediaServer(t, "127.0.0.1:0")
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	var urls, yaml []string
	for i := range cameras {
		u := fmt.Sprintf("%scam%d", camServer.URL(), i)
		urls = append(urls, u)
		yaml = append(yaml, cameraYAML(fmt.Sprintf("cam%d", i), u, true))
	}
	longGOPCamera(t, 100, "2M", true, urls...)
	cfg := strings.Replace(relayConfig("gw", flussonic.URL(), yaml...), "log: {level: debug}",
		fmt.Sprintf("log: {level: info}\nrelay: {cache_bytes: %d}", budget), 1)
	daemon, _ := runCamgate(t, cfg)
	waitFor(t, 60*time.Second, "every camera relayed for a GOP", func() bool {
		for i := range cameras {
			st, _ := flussonic.Stream(fmt.Sprintf("gw-cam%d", i))
			if st.KeyFrames < 2 {
				return false
			}
		}
		return true
	})

	var peak, peakAnon, peakFile int64
	deadline := time.Now().Add(measureTime)
	for time.Now().Before(deadline) {
		m, err := residentMemory(daemon.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if m["VmRSS"] > peak {
			peak, peakAnon, peakFile = m["VmRSS"], m["RssAnon"], m["RssFile"]
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The program's code and read-only data (RssFile) are most of what is not the cache.
	t.Logf("camgate VmRSS peak %.1f MiB (anonymous %.1f, file %.1f) over %s with %d cameras, budget %d MiB",
		mib(peak), mib(peakAnon), mib(peakFile), measureTime, cameras, budget>>20)
	if peak > budget+allowance {
		t.Errorf("camgate VmRSS peaked at %.1f MiB, want at most the %d MiB budget + %d MiB",
			mib(peak), budget>>20, allowance>>20)
	}
	for i := range cameras {
		if st, _ := flussonic.Stream(fmt.Sprintf("gw-cam%d", i)); st.VideoFrames < 400 {
			t.Errorf("cam%d: %d frames relayed; the cache must not cost video", i, st.VideoFrames)
		}
	}
	lost := cacheLosses(daemon.out.String())
	t.Logf("GOP caches lost to the budget, by camera: %v", lost)
	if len(lost) == 0 {
		t.Error("no camera lost its GOP cache: the budget did not bite")
	}
	if len(lost) == cameras {
		t.Error("every camera lost its GOP cache: the budget must keep those that fit")
	}
}

// residentMemory reads a process's resident set sizes from /proc: VmRSS and its parts RssAnon,
// RssFile and RssShmem, in bytes.
func residentMemory(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && !strings.HasPrefix(name, "Rss")) {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		m[name] = kb << 10
	}
	if _, ok := m["VmRSS"]; !ok {
		return nil, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

var cacheLossLine = regexp.MustCompile(`GOP cache lost.*camera_id=(\S+).*evictions=(\d+)`)

// cacheLosses finds the relays' "GOP cache lost" lines and returns each camera's evictions.
func cacheLosses(log string) map[string]int {
	out := map[string]int{}
	for _, m := range cacheLossLine.FindAllStringSubmatch(log, -1) {
		if n, _ := strconv.Atoi(m[2]); n > 0 {
			out[m[1]] = n
		}
	}
	return out
}
