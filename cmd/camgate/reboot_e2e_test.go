package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// poller asks one question every 100 ms until stopped, and keeps every answer that was wrong or
// came later than within.
type poller struct {
	name   string
	within time.Duration
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	asked  int
	bad    []string
}

func poll(name string, within time.Duration, ask func() error) *poller {
	p := &poller{name: name, within: within, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			began := time.Now()
			err := ask()
			took := time.Since(began)
			p.mu.Lock()
			p.asked++
			switch {
			case err != nil:
				p.bad = append(p.bad, fmt.Sprintf("%s at %s: %v", p.name, began.Format("15:04:05.000"), err))
			case took > within:
				p.bad = append(p.bad, fmt.Sprintf("%s at %s: answered in %v, over %v", p.name,
					began.Format("15:04:05.000"), took, within))
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

// end stops the poller and fails the test for each wrong or late answer.
func (p *poller) end(t *testing.T) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Error(b)
	}
	if p.asked < 5 {
		t.Errorf("%s was asked only %d times during the reboot", p.name, p.asked)
	}
	t.Logf("%s: %d answers, %d wrong or late", p.name, p.asked, len(p.bad))
}

// Acceptance 2 of issue 12: MQTT reboot_relay against a live relay (an ffmpeg camera relayed
// by `camgate run` into the Flussonic stand-in). The relay publishes again, and new frames reach
// the server, within 3 s of the command; meanwhile the page (GET /api/cameras) and SMTP (a full
// swaks session with an alarm mail, 250) are asked every 100 ms and every answer comes within 2 s.
// Before the owner loop, one reboot_relay deadlocked the whole daemon.
func TestRunRebootRelayKeepsPageAndMailAnswering(t *testing.T) {
	const back, answerWithin = 3 * time.Second, 2 * time.Second
	b := startBroker(t, freePort(t), "")
	replies := subscribe(t, b.port, "", "camgate/gwb/cmd/reboot_relay/reply")
	camServer, _ := mediaServer(t, "127.0.0.1:0")
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	camURL := camServer.URL() + "cam1"
	ffmpegCamera(t, camURL, "h264", "aac", 0)

	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	webAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := uplinkConfig("gwb", b.url(), smtpAddr, nil, "", cameraYAML("cam1", camURL, true))
	cfg = strings.Replace(cfg, `web: {listen: ""}`, fmt.Sprintf("web: {listen: '%s'}", webAddr), 1)
	cfg = strings.Replace(cfg, "flussonic:\n", fmt.Sprintf("flussonic:\n  publish: '%s'\n", flussonic.URL()), 1)
	_, cfgPath := runCamgate(t, cfg)
	waitFor(t, 30*time.Second, "cam1 relayed", func() bool {
		st, _ := flussonic.Stream("gwb-cam1")
		return st.VideoFrames > 25
	})
	pg := loginPage(t, "http://"+webAddr, filepath.Dir(cfgPath))
	pg.c.Timeout = answerWithin + time.Second // a late answer is measured, not cut off
	mail := alarmMailer(t, smtpAddr, 4)

	pagePoll := poll("GET /api/cameras", answerWithin, func() error {
		resp, err := pg.c.Get(pg.base + "/api/cameras")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	mailPoll := poll("SMTP session", answerWithin, func() error {
		out, err := mail("cam1@gw")
		code := dataReply(out)
		if err != nil {
			return fmt.Errorf("reply %q: %w", code, err)
		}
		if code != "250" {
			return fmt.Errorf("reply %q", code)
		}
		return nil
	})
	time.Sleep(time.Second) // both answer before the reboot, too

	before, _ := flussonic.Stream("gwb-cam1")
	sent := time.Now()
	publish(t, b.port, "camgate/gwb/cmd/reboot_relay", `{"id":"r1","camera_id":"cam1"}`)
	var framesAtRepublish uint64
	waitFor(t, 15*time.Second, "cam1 published again", func() bool {
		st, _ := flussonic.Stream("gwb-cam1")
		framesAtRepublish = st.VideoFrames
		return st.Publishes > before.Publishes
	})
	framesResume(t, flussonic, "gwb-cam1", time.Now(), 15*time.Second)
	took := time.Since(sent) // from the command, not from the new RECORD
	if took > back {
		t.Errorf("after reboot_relay, new frames reached the server %v after the command: want within %v", took, back)
	} else {
		t.Logf("after reboot_relay, new frames reached the server in %v", took.Round(time.Millisecond))
	}
	time.Sleep(time.Second) // and both still answer after it
	pagePoll.end(t)
	mailPoll.end(t)

	if st, _ := flussonic.Stream("gwb-cam1"); st.VideoFrames <= framesAtRepublish {
		t.Errorf("no frame after the new publish (%d frames)", st.VideoFrames)
	}
	r, ok := replies.last("camgate/gwb/cmd/reboot_relay/reply")
	if !ok || !strings.Contains(string(r.Payload), `"ok":true`) {
		t.Errorf("reboot_relay reply %q, want ok:true", r.Payload)
	}
}
