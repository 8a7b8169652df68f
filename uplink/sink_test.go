package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/store"
)

// watcher is an httptest event sink that records every batch it accepted and can refuse for a while.
type watcher struct {
	mu       sync.Mutex
	batches  [][]json.RawMessage
	refusals int // answer 503 this many times first
	refused  int
	bad      []string
}

func (w *watcher) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		w.bad = append(w.bad, fmt.Sprintf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type")))
	}
	if w.refused < w.refusals {
		w.refused++
		http.Error(rw, "not now", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		w.bad = append(w.bad, fmt.Sprintf("body %q: %v", body, err))
		http.Error(rw, "bad json", http.StatusBadRequest)
		return
	}
	w.batches = append(w.batches, batch)
}

func (w *watcher) events() (all []int, sizes []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.batches {
		sizes = append(sizes, len(b))
		for _, e := range b {
			var v struct{ N int }
			_ = json.Unmarshal(e, &v)
			all = append(all, v.N)
		}
	}
	return all, sizes
}

func runSink(t *testing.T, s *EventSink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after its context ended = %v, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func enqueueEvents(t *testing.T, q *memQueue, queue string, from, n int) {
	t.Helper()
	var msgs []store.Message
	for i := from; i < from+n; i++ {
		msgs = append(msgs, store.Message{Class: store.ClassEvent, Payload: fmt.Appendf(nil, `{"n":%d}`, i)})
	}
	if err := q.Enqueue(context.Background(), queue, msgs...); err != nil {
		t.Fatal(err)
	}
}

func TestEventSinkRetriesThroughRefusalsInOrderAndBatches(t *testing.T) {
	w := &watcher{refusals: 5}
	srv := httptest.NewServer(w)
	defer srv.Close()
	q := newMemQueue()
	s, err := NewEventSink(EventSinkConfig{
		URL: srv.URL + "/vsaas/api/v2/streamer_events", Queue: "sink:0", Logger: testLogger(t),
	}, q)
	if err != nil {
		t.Fatal(err)
	}
	s.retryMin, s.retryMax = 10*time.Millisecond, 50*time.Millisecond

	enqueueEvents(t, q, "sink:0", 0, 250)
	runSink(t, s)
	eventually(t, "the sink to report the refusal", 20*time.Second, func() bool {
		return strings.Contains(s.LastError(), "503")
	})
	enqueueEvents(t, q, "sink:0", 250, 100)
	eventually(t, "all 350 events delivered", 30*time.Second, func() bool {
		all, _ := w.events()
		return len(all) >= 350
	})
	all, sizes := w.events()
	for i, n := range all {
		if n != i {
			t.Fatalf("event %d is #%d: order or exactly-once broken (2xx batches must not repeat)", i, n)
		}
	}
	for _, n := range sizes {
		if n > 100 || n == 0 {
			t.Errorf("batch of %d events, want 1..100", n)
		}
	}
	if len(w.bad) > 0 {
		t.Errorf("bad requests: %v", w.bad)
	}
	eventually(t, "the queue to empty", 20*time.Second, func() bool { return q.depth("sink:0") == 0 })
	if s.LastError() != "" {
		t.Errorf("LastError() = %q after delivering", s.LastError())
	}
}

func TestEventSinkDropsPayloadsThatAreNotJSON(t *testing.T) {
	w := &watcher{}
	srv := httptest.NewServer(w)
	defer srv.Close()
	q := newMemQueue()
	s, err := NewEventSink(EventSinkConfig{URL: srv.URL, Queue: "sink:0", Logger: testLogger(t)}, q)
	if err != nil {
		t.Fatal(err)
	}
	_ = q.Enqueue(context.Background(), "sink:0",
		store.Message{Payload: []byte(`{"n":0}`)}, store.Message{Payload: []byte(`{"n":`)},
		store.Message{}, store.Message{Payload: []byte(`{"n":1}`)})
	runSink(t, s)
	eventually(t, "the good events", 20*time.Second, func() bool {
		all, _ := w.events()
		return len(all) == 2
	})
	if all, _ := w.events(); all[0] != 0 || all[1] != 1 {
		t.Errorf("delivered %v, want [0 1]", all)
	}
	if len(w.bad) > 0 {
		t.Errorf("bad requests: %v", w.bad)
	}
}

func TestEventSinkNoAnswerIsRetried(t *testing.T) {
	var mu sync.Mutex
	hang := true
	release := make(chan struct{})
	w := &watcher{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hang
		mu.Unlock()
		if h {
			// Read the body so the server notices the client giving up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	defer close(release)
	q := newMemQueue()
	s, err := NewEventSink(EventSinkConfig{
		URL: srv.URL, Queue: "sink:0", Logger: testLogger(t), Client: &http.Client{Timeout: 200 * time.Millisecond},
	}, q)
	if err != nil {
		t.Fatal(err)
	}
	s.retryMin, s.retryMax = 10*time.Millisecond, 50*time.Millisecond
	enqueueEvents(t, q, "sink:0", 0, 3)
	runSink(t, s)
	eventually(t, "a timeout reported", 20*time.Second, func() bool { return s.LastError() != "" })
	mu.Lock()
	hang = false
	mu.Unlock()
	eventually(t, "delivery once the sink answers", 20*time.Second, func() bool {
		all, _ := w.events()
		return len(all) == 3
	})
}

func TestNewEventSinkRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  EventSinkConfig
		want string
	}{
		{"scheme", EventSinkConfig{URL: "ftp://w.example.com/", Queue: "sink:0"}, "scheme must be http or https"},
		{"no host", EventSinkConfig{URL: "http:///x", Queue: "sink:0"}, "no host"},
		{"no queue", EventSinkConfig{URL: "http://w.example.com/"}, "no outbox queue"},
		{"password not echoed", EventSinkConfig{URL: "ftp://u:hunter2@w.example.com/", Queue: "sink:0"}, "u:xxxxx@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEventSink(tt.cfg, newMemQueue())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error = %v, want one containing %q and no password", err, tt.want)
			}
		})
	}
}

// An episodes sink PUTs each queued episode to <url>/<episode_id>, in order, with the sink's
// headers on every request; a refusal keeps the episode queued.
func TestEpisodeSinkPutsEachEpisodeWithHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []string
	refuse := 2
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		got = append(got, fmt.Sprintf("%s %s key=%s %s", r.Method, r.URL.Path, r.Header.Get("X-Api-Key"), body))
		if refuse > 0 {
			refuse--
			http.Error(rw, "later", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	q := newMemQueue()
	s, err := NewEventSink(EventSinkConfig{URL: srv.URL + "/central/api/v3/episodes", Format: FormatEpisodes,
		Header: http.Header{"X-Api-Key": {"k1"}}, Queue: "sink:e", Logger: testLogger(t)}, q)
	if err != nil {
		t.Fatal(err)
	}
	s.retryMin, s.retryMax = 10*time.Millisecond, 50*time.Millisecond
	_, open, _ := started.MarshalEpisode()
	id, closed, _ := stoppedAfter(5 * time.Second).MarshalEpisode()
	if err := q.Enqueue(context.Background(), "sink:e",
		store.Message{Payload: open}, store.Message{Payload: closed}); err != nil {
		t.Fatal(err)
	}
	runSink(t, s)
	eventually(t, "both episodes delivered", 20*time.Second, func() bool { return q.depth("sink:e") == 0 })
	mu.Lock()
	defer mu.Unlock()
	path := fmt.Sprintf("/central/api/v3/episodes/%d", id)
	want := []string{
		"PUT " + path + " key=k1 " + string(open), "PUT " + path + " key=k1 " + string(open),
		"PUT " + path + " key=k1 " + string(open), "PUT " + path + " key=k1 " + string(closed),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEventSinkSendsHeaders(t *testing.T) {
	keys := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		keys <- r.Header.Get("Authorization")
	}))
	defer srv.Close()
	q := newMemQueue()
	s, err := NewEventSink(EventSinkConfig{
		URL: srv.URL, Header: http.Header{"Authorization": {"Bearer t0k"}}, Queue: "sink:0", Logger: testLogger(t),
	}, q)
	if err != nil {
		t.Fatal(err)
	}
	enqueueEvents(t, q, "sink:0", 0, 1)
	runSink(t, s)
	select {
	case k := <-keys:
		if k != "Bearer t0k" {
			t.Errorf("Authorization %q", k)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no request")
	}
}
