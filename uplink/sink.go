package uplink

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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/store"
)

// maxBatch is SPEC §5's bound on events per POST.
const maxBatch = 100

// Sink formats (SPEC §5).
const (
	// FormatEventSink POSTs JSON arrays of event objects, as a Flussonic streamer's event_sink.
	FormatEventSink = "event_sink"
	// FormatEpisodes PUTs each queued episode to <url>/<episode_id>, Flussonic Central's
	// episode_save (openapi/flussonic/paths/central/episode.yml).
	FormatEpisodes = "episodes"
)

// EventSinkConfig configures one Flussonic/Watcher event sink.
type EventSinkConfig struct {
	URL    string       // http:// or https://
	Format string       // FormatEventSink ("" too) or FormatEpisodes
	Header http.Header  // added to every request: an API key, Basic auth
	Queue  string       // outbox queue to drain, e.g. "sink:0"
	Client *http.Client // nil = a client with connect and overall timeouts
	Logger *slog.Logger // nil = slog.Default()
}

// EventSink drains one outbox queue into an event sink. In the event_sink format each queued
// payload is one event object (Event.MarshalEventSink) and they go out in JSON arrays of up to
// 100; in the episodes format each is one episode (Event.MarshalEpisode), PUT on its own.
type EventSink struct {
	url    string
	format string
	header http.Header
	safe   string // url with the password masked, for logs and errors
	queue  string
	client *http.Client
	log    *slog.Logger
	q      Queue

	// retryMin and retryMax bound the backoff between failed POSTs; tests shorten them.
	retryMin, retryMax time.Duration

	mu      sync.Mutex
	lastErr string
}

// NewEventSink checks cfg and returns a sink that drains cfg.Queue of q once Run is called.
func NewEventSink(cfg EventSinkConfig, q Queue) (*EventSink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("event sink: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("event sink: url %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("event sink: url %s: no host", u.Redacted())
	}
	if cfg.Queue == "" {
		return nil, errors.New("event sink: no outbox queue named")
	}
	if q == nil {
		return nil, errors.New("event sink: no outbox")
	}
	client := cfg.Client
	if client == nil {
		client = defaultHTTPClient()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	format := cfg.Format
	switch format {
	case "":
		format = FormatEventSink
	case FormatEventSink, FormatEpisodes:
	default:
		return nil, fmt.Errorf("event sink: format must be %s or %s, not %q", FormatEventSink, FormatEpisodes, format)
	}
	safe := u.Redacted()
	return &EventSink{
		url:      cfg.URL,
		format:   format,
		header:   cfg.Header.Clone(),
		safe:     safe,
		queue:    cfg.Queue,
		client:   client,
		log:      log.With("sink", safe, "queue", cfg.Queue),
		q:        q,
		retryMin: 500 * time.Millisecond,
		retryMax: 30 * time.Second,
	}, nil
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 20 * time.Second
	t.MaxIdleConns = 2
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

// LastError describes the latest failed delivery, or is empty when the latest one succeeded.
func (s *EventSink) LastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *EventSink) setLastError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr = ""
		return
	}
	s.lastErr = err.Error()
}

// Run posts queued events, oldest first, until ctx ends. A batch leaves the queue only on a 2xx
// answer; otherwise the same batch is retried with capped, jittered backoff, so order holds.
func (s *EventSink) Run(ctx context.Context) error {
	notify := s.q.Notify(s.queue)
	bo := newBackoff(s.retryMin, s.retryMax)
	for {
		batch := maxBatch
		if s.format == FormatEpisodes {
			batch = 1
		}
		msgs, err := s.q.Peek(s.queue, batch)
		if err != nil {
			err = fmt.Errorf("event sink: outbox: %w", err)
			s.setLastError(err)
			s.log.Error("cannot read the outbox", "err", err)
			if !sleep(ctx, bo.delay()) {
				return nil
			}
			continue
		}
		if len(msgs) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-notify:
				continue
			}
		}
		msgs, bad := splitValidJSON(msgs)
		if len(bad) > 0 {
			// A payload that is not JSON would make every batch holding it fail forever.
			s.log.Error("dropping queued events that are not JSON", "count", len(bad))
			if err := s.q.Ack(s.queue, seqs(bad)...); err != nil {
				s.log.Error("cannot acknowledge in the outbox", "err", err)
			}
			if len(msgs) == 0 {
				continue
			}
		}
		if err := s.deliver(ctx, msgs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.setLastError(err)
			d := bo.delay()
			s.log.Warn("event delivery failed, will retry", "err", err, "events", len(msgs), "retry_in", d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		bo.reset()
		s.setLastError(nil)
		if err := s.q.Ack(s.queue, seqs(msgs)...); err != nil {
			s.log.Error("cannot acknowledge in the outbox; events may be sent again", "err", err)
		}
		s.log.Debug("events delivered", "events", len(msgs))
	}
}

// splitValidJSON separates payloads that are JSON values from those that are not.
func splitValidJSON(msgs []store.Message) (good, bad []store.Message) {
	good = msgs[:0:0]
	for _, m := range msgs {
		if json.Valid(m.Payload) {
			good = append(good, m)
		} else {
			bad = append(bad, m)
		}
	}
	return good, bad
}

// deliver sends msgs in the sink's format.
func (s *EventSink) deliver(ctx context.Context, msgs []store.Message) error {
	if s.format == FormatEventSink {
		return s.post(ctx, msgs)
	}
	for _, m := range msgs {
		if err := s.putEpisode(ctx, m.Payload); err != nil {
			return err
		}
	}
	return nil
}

// putEpisode sends one episode to <url>/<episode_id>.
func (s *EventSink) putEpisode(ctx context.Context, payload []byte) error {
	var ep struct {
		EpisodeID int64 `json:"episode_id"`
	}
	if err := json.Unmarshal(payload, &ep); err != nil || ep.EpisodeID <= 0 {
		// Not ours to fix by retrying: say so and let it go, as for payloads that are not JSON.
		s.log.Error("dropping a queued episode without an episode_id", "payload_bytes", len(payload))
		return nil
	}
	target := strings.TrimSuffix(s.url, "/") + "/" + strconv.FormatInt(ep.EpisodeID, 10)
	return s.send(ctx, http.MethodPut, target, payload)
}

// post sends msgs as one JSON array, concatenating the payloads as they are.
func (s *EventSink) post(ctx context.Context, msgs []store.Message) error {
	n := 2 + len(msgs)
	for _, m := range msgs {
		n += len(m.Payload)
	}
	body := make([]byte, 0, n)
	body = append(body, '[')
	for i, m := range msgs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, m.Payload...)
	}
	body = append(body, ']')
	return s.send(ctx, http.MethodPost, s.url, body)
}

// send makes one request with the sink's headers; only a 2xx answer is success.
func (s *EventSink) send(ctx context.Context, method, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("event sink: %s %s: %w", method, s.safe, err)
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, possibly with its password: unwrap to the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("event sink: %s %s: %w", method, s.safe, err)
	}
	defer resp.Body.Close()
	// Read a bounded amount so the connection can be reused, and keep a little for the error.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("event sink: %s %s: %s: %q", method, s.safe, resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}
