package sim

import (
	"bytes"
	"encoding/base64"
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

	started := `{"event":"stream_motion_started","event_id":1732400000000001,"media":"cam1","utc_ms":1732400000000,` +
		`"utc":1732400000,"time":"2024-11-23T22:13:20.000Z","server":"fl.example.com","motion_id":"m1",` +
		`"motion_data":"smtp: Motion Detection Alarm"}`
	stopped := `{"event":"stream_motion_stopped","event_id":1732400005000001,"media":"cam1","utc_ms":1732400005000,` +
		`"utc":1732400005,"time":"2024-11-23T22:13:25.000Z","server":"fl.example.com","motion_id":"m1","duration":5}`
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
		{"one bad event refuses the batch", 0, "POST", "", "[" + started + `,{"event":"motion_started"}]`, 400,
			[]string{started, stopped, stopped}},
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

// CheckEvent refuses each way an event could miss SPEC §5, naming what is wrong.
func TestCheckEvent(t *testing.T) {
	base := map[string]any{
		"event": "stream_motion_started", "event_id": 1732400000000001, "media": "gw1-porch",
		"utc_ms": 1732400000000, "utc": 1732400000, "time": "2024-11-23T22:13:20.000Z",
		"server": "fl.example.com", "motion_id": "m1", "motion_data": "smtp: Motion",
	}
	with := func(changes map[string]any) json.RawMessage {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return b
	}
	stop := map[string]any{"event": "stream_motion_stopped", "utc_ms": 1732400031400, "utc": 1732400031,
		"time": "2024-11-23T22:13:51.400Z"}
	withStop := func(extra map[string]any) json.RawMessage {
		m := map[string]any{}
		for k, v := range stop {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return with(m)
	}
	cases := []struct {
		name string
		e    json.RawMessage
		want string // "" = accepted
	}{
		{"SPEC §5's started event", with(nil), ""},
		{"its stop 31 s later", withStop(map[string]any{"duration": 31}), ""},
		{"v23 names", with(map[string]any{"event": "motion_started"}), "is not stream_motion_started"},
		{"duration in ms", withStop(map[string]any{"duration": 31400}), "seconds, not milliseconds"},
		{"duration zero", withStop(map[string]any{"duration": 0}), "at least 1"},
		{"duration as a float", withStop(map[string]any{"duration": 31.4}), "duration must be an integer"},
		{"stop without duration", withStop(nil), "needs its duration"},
		{"start with duration", with(map[string]any{"duration": 3}), "has no duration"},
		{"event_id a string", with(map[string]any{"event_id": "e1"}), "event_id must be an integer"},
		{"event_id at 2^53", with(map[string]any{"event_id": int64(1) << 53}), "not in 1..2^53-1"},
		{"utc missing", with(map[string]any{"utc": nil}), "utc is missing"},
		{"time missing", with(map[string]any{"time": nil}), "time is missing"},
		{"utc off by one", with(map[string]any{"utc": 1732400001}), "is not utc_ms"},
		{"time of another instant", with(map[string]any{"time": "2024-11-23T22:13:21.000Z"}), "is not utc_ms"},
		{"time not UTC", with(map[string]any{"time": "2024-11-24T01:13:20.000+03:00"}), "RFC 3339 in UTC"},
		{"utc_ms in seconds", with(map[string]any{"utc_ms": 1732400000, "utc": 1732400}), "not a time in milliseconds"},
		{"no server", with(map[string]any{"server": ""}), "must not be empty"},
		{"unknown field", with(map[string]any{"gateway": "gw1"}), `field "gateway"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			started := map[string]int64{}
			if strings.Contains(string(tc.e), "stopped") {
				if err := CheckEvent(with(nil), started); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckEvent(tc.e, started)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestEventSinkRequiresItsHeader(t *testing.T) {
	t.Parallel()
	s, err := NewEventSink(EventSinkConfig{Header: http.Header{"X-Api-Key": {"k1"}}})
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, s.Run)
	for key, want := range map[string]int{"": 401, "wrong": 401, "k1": 200} {
		req, _ := http.NewRequest("POST", s.URL(), strings.NewReader("[]"))
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("key %q: %d, want %d", key, resp.StatusCode, want)
		}
	}
}

func TestParseEpisode(t *testing.T) {
	jpg := base64.StdEncoding.EncodeToString([]byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10})
	cases := []struct {
		name, path, body, want string
	}{
		{"opened", "1774", `{"episode_id":1774,"media":"cam1","episode_type":"generic","opened_at":1732400000000,` +
			`"updated_at":1732400000000,"preview":"` + jpg + `"}`, ""},
		{"closed", "1774",
			`{"episode_id":1774,"media":"cam1","opened_at":1732400000000,"updated_at":1732400031400,"closed_at":1732400031400}`,
			""},
		{"id not the path's", "1775",
			`{"episode_id":1774,"media":"cam1","opened_at":1732400000000,"updated_at":1732400000000}`, "not 1775"},
		{"id a uuid", "6f1c-aa", `{}`, "not a snowflake id"},
		{"id a string in the body", "1774",
			`{"episode_id":"1774","media":"cam1","opened_at":1732400000000,"updated_at":1732400000000}`, "must be an integer"},
		{"no media", "1774", `{"episode_id":1774,"opened_at":1732400000000,"updated_at":1732400000000}`, "media is required"},
		{"seconds", "1774", `{"episode_id":1774,"media":"cam1","opened_at":1732400000,"updated_at":1732400000}`,
			"not utc_ms"},
		{"closed before opened", "1774",
			`{"episode_id":1774,"media":"cam1","opened_at":1732400000000,"updated_at":1732400000000,"closed_at":1732300000000}`,
			"before opened_at"},
		{"no updated_at", "1774", `{"episode_id":1774,"media":"cam1","opened_at":1732400000000}`, "updated_at is required"},
		{"preview not a JPEG", "1774",
			`{"episode_id":1774,"media":"cam1","opened_at":1732400000000,"updated_at":1732400000000,"preview":"R0lGODlh"}`,
			"not base64 of a JPEG"},
		{"another type", "1774",
			`{"episode_id":1774,"media":"cam1","episode_type":"face","opened_at":1732400000000,"updated_at":1732400000000}`,
			"generic"},
		{"unknown field", "1774",
			`{"episode_id":1774,"media":"cam1","opened_at":1732400000000,"updated_at":1732400000000,"motion_id":"x"}`,
			`"motion_id"`},
	}
	for _, tc := range cases {
		_, err := ParseEpisode(tc.path, []byte(tc.body))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseEpisode(f *testing.F) {
	f.Add("1774", []byte(`{"episode_id":1774,"media":"cam1","opened_at":1732400000000,"updated_at":1732400000000}`))
	f.Add("0", []byte(`{"preview":"////"}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		ep, err := ParseEpisode(path, body)
		if err == nil && (ep.EpisodeID <= 0 || ep.Media == "" || ep.UpdatedAt < ep.OpenedAt) {
			t.Fatalf("accepted %+v", ep)
		}
	})
}

func FuzzCheckEvent(f *testing.F) {
	f.Add([]byte(`{"event":"stream_motion_started","event_id":1,"media":"m","utc_ms":1732400000000,"utc":1732400000,` +
		`"time":"2024-11-23T22:13:20.000Z","server":"s","motion_id":"m1"}`))
	f.Add([]byte(`{"event":"stream_motion_stopped","duration":1e3}`))
	f.Fuzz(func(t *testing.T, e []byte) {
		_ = CheckEvent(e, map[string]int64{})
	})
}
