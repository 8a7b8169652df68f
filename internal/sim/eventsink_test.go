package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is an io.Writer safe to read while the sink writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEventSink(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	s, err := NewEventSink(EventSinkConfig{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, s.Run)
	if !strings.HasSuffix(s.URL(), "/vsaas/api/v2/streamer_events") {
		t.Fatalf("URL() = %s", s.URL())
	}

	started := `{"event":"stream_motion_started","event_id":"e1","media":"cam1","utc_ms":1732400000000,"server":"gw","motion_id":"m1","motion_data":"smtp: Motion Detection Alarm"}`
	stopped := `{"event":"stream_motion_stopped","event_id":"e2","media":"cam1","utc_ms":1732400005000,"server":"gw","motion_id":"m1","duration":5000}`
	steps := []struct {
		name       string
		status     int // SetStatus before the POST; 0 leaves it
		method     string
		path       string
		body       string
		wantStatus int
		wantEvents []string // everything recorded after the step
	}{
		{"a batch of two is recorded in order", 0, "POST", "", "[" + started + ",\n " + stopped + "]", 200,
			[]string{started, stopped}},
		{"an empty batch is fine", 0, "POST", "", "[]", 200, []string{started, stopped}},
		{"an outage answers 503 and records nothing", 503, "POST", "", "[" + started + "]", 503,
			[]string{started, stopped}},
		{"bad JSON is 400 even during an outage", 0, "POST", "", "[{", 400, []string{started, stopped}},
		{"back up", 200, "POST", "", "[" + stopped + "]", 200, []string{started, stopped, stopped}},
		{"not JSON", 0, "POST", "", "motion!", 400, []string{started, stopped, stopped}},
		{"an object, not an array", 0, "POST", "", started, 400, []string{started, stopped, stopped}},
		{"an array of non-objects", 0, "POST", "", "[1,2]", 400, []string{started, stopped, stopped}},
		{"null element", 0, "POST", "", "[null]", 400, []string{started, stopped, stopped}},
		{"GET is not allowed", 0, "GET", "", "", 405, []string{started, stopped, stopped}},
		{"another path", 0, "POST", "/other", "[]", 404, []string{started, stopped, stopped}},
	}
	for _, st := range steps {
		if st.status != 0 {
			s.SetStatus(st.status)
		}
		url := s.URL()
		if st.path != "" {
			url = strings.TrimSuffix(url, "/vsaas/api/v2/streamer_events") + st.path
		}
		req, err := http.NewRequest(st.method, url, strings.NewReader(st.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != st.wantStatus {
			t.Errorf("%s: status %d, want %d", st.name, resp.StatusCode, st.wantStatus)
		}
		var got []string
		for _, e := range s.Events() {
			got = append(got, string(e))
		}
		if strings.Join(got, "\n") != strings.Join(st.wantEvents, "\n") {
			t.Errorf("%s: Events() =\n%s\nwant\n%s", st.name, strings.Join(got, "\n"), strings.Join(st.wantEvents, "\n"))
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("Out has %d lines, want one per recorded event (3):\n%s", n, out.String())
	}
	for _, e := range s.Events() {
		if !json.Valid(e) {
			t.Errorf("recorded event %s is not JSON", e)
		}
	}
}

func TestEventSinkRefusesHugeBatch(t *testing.T) {
	t.Parallel()
	s, err := NewEventSink(EventSinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, s.Run)
	body := `[{"event":"x","pad":"` + strings.Repeat("a", maxEventBatchBytes) + `"}]`
	resp, err := http.Post(s.URL(), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	if n := len(s.Events()); n != 0 {
		t.Errorf("%d events recorded, want none", n)
	}
}
