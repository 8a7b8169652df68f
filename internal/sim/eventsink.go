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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EventSinkPath is where Watcher takes streamer events (SPEC §5).
const EventSinkPath = "/vsaas/api/v2/streamer_events"

// maxEventBatchBytes bounds one POST body: 100 events (the batch limit) of a few hundred bytes
// each fit many times over.
const maxEventBatchBytes = 1 << 20

// maxEventsPerBatch is SPEC §5's bound on one POST.
const maxEventsPerBatch = 100

// EventSinkConfig configures the Watcher event_sink stand-in.
type EventSinkConfig struct {
	// Addr is where to listen for HTTP, "127.0.0.1:0" when empty.
	Addr string
	// Header, when set, must be on every request with exactly these values (an API key, Basic
	// auth); a request without them is answered 401, as a receiver behind an API key does.
	Header http.Header
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Out, when set, gets each accepted event as one line of JSON (for the demo).
	Out io.Writer
}

// EventSink stands in for Watcher's event_sink: it takes POSTs of JSON arrays of event objects
// at EventSinkPath and keeps every event it acknowledged, in order. It is strict: every field of
// every event is checked against SPEC §5 and Flussonic's event schemas (openapi-demo,
// openapi/flussonic/components/schemas/events/motion_started.yml, motion_stopped.yml,
// motion_base.yml, event_default.yml, event_media.yml) by CheckEvent, and a batch with one
// event a receiver could not take is refused whole with 400 naming it.
type EventSink struct {
	cfg EventSinkConfig
	log *slog.Logger
	ln  net.Listener

	mu      sync.Mutex
	events  []json.RawMessage
	status  int
	started map[string]int64 // motion_id -> utc_ms of its started event, to check duration's unit
}

// NewEventSink binds the sink's listener; Run serves it.
func NewEventSink(cfg EventSinkConfig) (*EventSink, error) {
	ln, err := listenTCP("sim event sink", cfg.Addr)
	if err != nil {
		return nil, err
	}
	return &EventSink{cfg: cfg, log: loggerOrDiscard(cfg.Logger), ln: ln, status: http.StatusOK,
		started: map[string]int64{}}, nil
}

// URL is the full address to POST events to.
func (s *EventSink) URL() string { return dialURL("http", s.ln) + EventSinkPath }

// Run serves until ctx ends. It can be called once.
func (s *EventSink) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+EventSinkPath, s.post)
	return serveHTTP(ctx, s.ln, mux, s.log, "sim event sink")
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
	if err := checkHeader(r, s.cfg.Header); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
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
	for i, e := range events {
		if err = CheckEvent(e, s.started); err != nil {
			err = fmt.Errorf("event %d: %w", i, err)
			break
		}
	}
	if err == nil && status >= 200 && status < 300 {
		s.events = append(s.events, events...)
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Info("sim event sink: refused an event", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

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
	if len(raw) > maxEventsPerBatch {
		return nil, fmt.Errorf("%d events in one batch, at most %d", len(raw), maxEventsPerBatch)
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

// checkHeader is nil when r carries every value of want.
func checkHeader(r *http.Request, want http.Header) error {
	for k, vs := range want {
		for _, v := range vs {
			if !slices.Contains(r.Header.Values(k), v) {
				return fmt.Errorf("header %s missing or wrong", k)
			}
		}
	}
	return nil
}

// eventFields are the fields SPEC §5 names, and the type each must have.
var eventFields = map[string]string{
	"event": "string", "event_id": "integer", "media": "string", "utc_ms": "integer", "utc": "integer",
	"time": "string", "server": "string", "motion_id": "string", "motion_data": "string", "duration": "integer",
}

// CheckEvent checks one event object as SPEC §5 and Flussonic's schemas define it: the motion
// event names of every version, integer event_id below 2^53, utc (s), utc_ms and time (RFC 3339
// UTC) naming one instant, a server and media, and on a stop a duration in whole seconds of at
// least 1 that is no longer than the episode since its started event (so milliseconds fail).
// started maps motion_id to its started event's utc_ms; CheckEvent adds to it. A field SPEC §5
// does not name is refused too: stricter than a receiver, which would ignore it, so that a
// misspelt field fails a test instead of being lost.
func CheckEvent(e json.RawMessage, started map[string]int64) error {
	dec := json.NewDecoder(bytes.NewReader(e))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return errors.New("not a JSON object")
	}
	ints := map[string]int64{}
	strs := map[string]string{}
	for k, v := range obj {
		typ, known := eventFields[k]
		if !known {
			return fmt.Errorf("field %q is not one of SPEC §5's", k)
		}
		switch typ {
		case "string":
			sv, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s must be a string", k)
			}
			strs[k] = sv
		case "integer":
			n, ok := v.(json.Number)
			if !ok {
				return fmt.Errorf("%s must be an integer, not %T", k, v)
			}
			i, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return fmt.Errorf("%s must be an integer, not %s", k, n)
			}
			ints[k] = i
		}
	}
	for _, k := range []string{"event", "event_id", "media", "utc_ms", "utc", "time", "server", "motion_id"} {
		if _, ok := obj[k]; !ok {
			return fmt.Errorf("%s is missing", k)
		}
	}
	if strs["media"] == "" || strs["server"] == "" || strs["motion_id"] == "" {
		return errors.New("media, server and motion_id must not be empty")
	}
	if id := ints["event_id"]; id < 1 || id >= 1<<53 {
		return fmt.Errorf("event_id %d is not in 1..2^53-1", id)
	}
	ms := ints["utc_ms"]
	if ms < 1_000_000_000_000 || ms > 10_000_000_000_000 {
		return fmt.Errorf("utc_ms %d is not a time in milliseconds", ms)
	}
	if ints["utc"] != ms/1000 {
		return fmt.Errorf("utc %d is not utc_ms %d in seconds", ints["utc"], ms)
	}
	tm, err := time.Parse(time.RFC3339Nano, strs["time"])
	if err != nil || !strings.HasSuffix(strs["time"], "Z") {
		return fmt.Errorf("time %q is not RFC 3339 in UTC", strs["time"])
	}
	if tm.UnixMilli() != ms {
		return fmt.Errorf("time %s is not utc_ms %d", strs["time"], ms)
	}
	_, hasDuration := obj["duration"]
	switch strs["event"] {
	case "stream_motion_started":
		if hasDuration {
			return errors.New("a started event has no duration")
		}
		started[strs["motion_id"]] = ms
	case "stream_motion_stopped":
		if !hasDuration {
			return errors.New("a stopped event needs its duration")
		}
		d := ints["duration"]
		if d < 1 {
			return fmt.Errorf("duration %d: whole seconds, at least 1", d)
		}
		if from, ok := started[strs["motion_id"]]; ok && d*1000 > ms-from+1500 {
			return fmt.Errorf("duration %d is longer than the %d ms since its start: seconds, not milliseconds", d, ms-from)
		}
	default:
		return fmt.Errorf("event %q is not stream_motion_started or stream_motion_stopped", strs["event"])
	}
	return nil
}
