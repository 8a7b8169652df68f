package uplink

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// startStreamSetup runs a StreamSetup against url with short retries until the test ends.
func startStreamSetup(t *testing.T, cfg StreamSetupConfig) *StreamSetup {
	t.Helper()
	s, err := NewStreamSetup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.retryMin, s.retryMax = 20*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func startSimAPI(t *testing.T) *sim.MediaServer {
	t.Helper()
	m, err := sim.NewMediaServer(sim.MediaServerConfig{APIAddr: "127.0.0.1:0", APIUser: "admin", APIPass: "edit"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStreamSetupCreatesStreamsAndLeavesRemovedOnes(t *testing.T) {
	m := startSimAPI(t)
	var logs syncBuffer
	s := startStreamSetup(t, StreamSetupConfig{URL: m.APIURL(), Username: "admin", Password: "edit",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	s.Want([]StreamSpec{{Name: "cam1", Title: "Door", Password: "pub"}, {Name: "yard/cam2", Title: "Yard"}})
	eventually(t, "both streams at the server", 20*time.Second, func() bool {
		_, ok1 := m.StreamConfig("cam1")
		_, ok2 := m.StreamConfig("yard/cam2")
		return ok1 && ok2
	})
	c1, _ := m.StreamConfig("cam1")
	if c1.Title != "Door" || c1.Password != "pub" || len(c1.Inputs) != 1 || c1.Inputs[0].URL != "publish://" {
		t.Errorf("cam1 at the server = %+v, want title Door, password pub, input publish://", c1)
	}

	s.Want([]StreamSpec{{Name: "cam1", Title: "Front door", Password: "pub"}})
	eventually(t, "the new title", 20*time.Second, func() bool {
		c, _ := m.StreamConfig("cam1")
		return c.Title == "Front door"
	})
	if _, ok := m.StreamConfig("yard/cam2"); !ok {
		t.Error("a removed camera's stream was deleted; it must be left alone")
	}
	eventually(t, "the removal logged", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), "stream=yard/cam2") && strings.Contains(logs.String(), "left")
	})
}

func TestStreamSetupReportsRefusedCredentials(t *testing.T) {
	m := startSimAPI(t)
	s := startStreamSetup(t, StreamSetupConfig{URL: m.APIURL(), Username: "admin", Password: "wrong"})
	s.Want([]StreamSpec{{Name: "cam1", Title: "Door"}})
	eventually(t, "a problem for cam1", 20*time.Second, func() bool { return s.Problem("cam1") != "" })
	if p := s.Problem("cam1"); !strings.Contains(p, "401") || !strings.Contains(p, "flussonic.api") {
		t.Errorf("Problem = %q, want the 401 and which setting to check", p)
	}
	if _, ok := m.StreamConfig("cam1"); ok {
		t.Error("stream created with a wrong password")
	}
}

// A failing API is retried with backoff until it takes the stream, and the problem clears.
func TestStreamSetupRetriesUntilItSucceedsWithBearer(t *testing.T) {
	var mu sync.Mutex
	var puts int
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		puts++
		auth = append(auth, r.Header.Get("Authorization"))
		if puts <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	s := startStreamSetup(t, StreamSetupConfig{URL: srv.URL + "/streamer/api/v3", Password: "tok"})
	s.Want([]StreamSpec{{Name: "cam1", Title: "Door"}})
	eventually(t, "a third PUT", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return puts >= 3 })
	eventually(t, "the problem cleared", 20*time.Second, func() bool { return s.Problem("cam1") == "" })
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auth {
		if a != "Bearer tok" {
			t.Errorf("Authorization = %q, want Bearer tok", a)
		}
	}
	time.Sleep(300 * time.Millisecond) // longer than retryMax: a stream set up is not PUT again
	if puts != 3 {
		t.Errorf("%d PUTs, want 3 (two refused, one taken)", puts)
	}
}

func TestNewStreamSetupRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://h/x", "http://", "://x"} {
		if _, err := NewStreamSetup(StreamSetupConfig{URL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
