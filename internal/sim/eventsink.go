package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// EventSinkPath is where Watcher takes streamer events (SPEC §5).
const EventSinkPath = "/vsaas/api/v2/streamer_events"

// maxEventBatchBytes bounds one POST body: 100 events (the batch limit) of a few hundred bytes
// each fit many times over.
const maxEventBatchBytes = 1 << 20

// EventSinkConfig configures the Watcher event_sink stand-in.
type EventSinkConfig struct {
	// Addr is where to listen for HTTP, "127.0.0.1:0" when empty.
	Addr string
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Out, when set, gets each accepted event as one line of JSON (for the demo).
	Out io.Writer
}

// EventSink stands in for Watcher's event_sink: it takes POSTs of JSON arrays of event objects
// at EventSinkPath and keeps every event it acknowledged, in order.
type EventSink struct {
	cfg EventSinkConfig
	log *slog.Logger
	ln  net.Listener

	mu     sync.Mutex
	events []json.RawMessage
	status int
}

// NewEventSink binds the sink's listener; Run serves it.
func NewEventSink(cfg EventSinkConfig) (*EventSink, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim event sink: listen %s: %w", addr, err)
	}
	return &EventSink{cfg: cfg, log: loggerOrDiscard(cfg.Logger), ln: ln, status: http.StatusOK}, nil
}

// URL is the full address to POST events to.
func (s *EventSink) URL() string { return dialURL("http", s.ln) + EventSinkPath }

// Run serves until ctx ends. It can be called once.
func (s *EventSink) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+EventSinkPath, s.post)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sim event sink: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sim event sink: %w", err)
	}
	return nil
}

// Events returns every event acknowledged so far, in the order received.
func (s *EventSink) Events() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]json.RawMessage, len(s.events))
	copy(out, s.events)
	return out
}

// SetStatus makes the sink answer every valid POST with code, e.g. 503 to simulate an outage.
// Only batches answered with a 2xx are recorded, as only those count as delivered.
func (s *EventSink) SetStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

func (s *EventSink) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBatchBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "batch too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	events, err := parseEventBatch(body)
	if err != nil {
		s.log.Info("sim event sink: bad batch", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	status := s.status
	if status >= 200 && status < 300 {
		s.events = append(s.events, events...)
	}
	s.mu.Unlock()

	if status >= 200 && status < 300 && s.cfg.Out != nil {
		for _, e := range events {
			fmt.Fprintf(s.cfg.Out, "event: %s\n", e)
		}
	}
	w.WriteHeader(status)
}

// parseEventBatch checks that body is a JSON array of objects and returns each object compacted
// onto one line.
func parseEventBatch(body []byte) ([]json.RawMessage, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("want a JSON array of event objects: %w", err)
	}
	events := make([]json.RawMessage, 0, len(raw))
	for i, e := range raw {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(e, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("event %d: want a JSON object", i)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		events = append(events, b.Bytes())
	}
	return events, nil
}
