package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// StreamSetupErrorPrefix starts every StreamSetup error, so that a page can tell them apart.
const StreamSetupErrorPrefix = "media server api: "

// StreamSpec is one stream camgate wants at the Media Server.
type StreamSpec struct {
	Name     string // the stream name cameras publish to
	Title    string // the camera's name
	Password string // the publish password (?password= of flussonic.publish), "" for none
}

// StreamSetupConfig configures the zero-touch stream setup.
type StreamSetupConfig struct {
	// URL is the Media Server API base, http(s)://host/streamer/api/v3.
	URL string
	// Username set: Basic auth (Flussonic's edit_auth); Username empty and Password set: Password
	// is a Bearer token (the API's bearerAuth).
	Username, Password string
	Client             *http.Client // nil = connect and overall timeouts
	Logger             *slog.Logger
}

// StreamSetup creates or updates each wanted stream at the Media Server with
// PUT <api>/streams/<name> (openapi-demo, openapi/flussonic/paths/stream/stream.yml,
// stream_save: "Create or update a stream by its name", a partial config updates only what it
// names) and input publish:// (the input that lets a stream take publishing, Flussonic's
// publishing page). Run owns the work: Want hands it the latest set and never waits, so the
// relay never waits for the API; a stream that failed is tried again with backoff until it
// succeeds. A stream no longer wanted is left alone (its archive lives there), and logged.
type StreamSetup struct {
	base     string
	safe     string
	user     string
	password string
	client   *http.Client
	log      *slog.Logger
	want     chan map[string]StreamSpec

	// retryMin and retryMax bound the backoff; tests shorten them.
	retryMin, retryMax time.Duration

	mu     sync.Mutex
	errors map[string]string // stream name -> latest failure, for the page and the state
}

// NewStreamSetup checks cfg.
func NewStreamSetup(cfg StreamSetupConfig) (*StreamSetup, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf(StreamSetupErrorPrefix+"url %q: must be http(s)://host/streamer/api/v3", cfg.URL)
	}
	client := cfg.Client
	if client == nil {
		client = defaultHTTPClient()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &StreamSetup{
		base: strings.TrimSuffix(cfg.URL, "/"), safe: u.Redacted(), user: cfg.Username, password: cfg.Password,
		client: client, log: log, want: make(chan map[string]StreamSpec, 1),
		retryMin: time.Second, retryMax: 5 * time.Minute, errors: map[string]string{},
	}, nil
}

// Want replaces the set of wanted streams. It never blocks: a set not yet taken by Run is
// replaced by the newer one.
func (s *StreamSetup) Want(specs []StreamSpec) {
	m := make(map[string]StreamSpec, len(specs))
	for _, sp := range specs {
		m[sp.Name] = sp
	}
	for {
		select {
		case s.want <- m:
			return
		default:
		}
		select {
		case <-s.want: // drop the stale set
		default:
		}
	}
}

// Problem is the latest failure of setting up the stream name, "" when it is set up or was
// never tried.
func (s *StreamSetup) Problem(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errors[name]
}

func (s *StreamSetup) setProblem(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.errors, name)
		return
	}
	s.errors[name] = err.Error()
}

// Run sets streams up until ctx ends.
func (s *StreamSetup) Run(ctx context.Context) error {
	wanted := map[string]StreamSpec{}
	done := map[string]StreamSpec{} // as last PUT successfully
	bo := newBackoff(s.retryMin, s.retryMax)
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case w := <-s.want:
			for name := range wanted {
				if _, still := w[name]; !still {
					s.log.Info("camera gone: its stream is left on the Media Server with its archive", "stream", name)
					delete(done, name)
					s.setProblem(name, nil)
				}
			}
			wanted = w
			bo.reset()
		case <-retry:
		}
		retry = nil
		failed := false
		for _, name := range slices.Sorted(maps.Keys(wanted)) {
			sp := wanted[name]
			if d, ok := done[name]; ok && d == sp {
				continue
			}
			err := s.put(ctx, sp)
			if ctx.Err() != nil {
				return nil
			}
			s.setProblem(name, err)
			if err != nil {
				s.log.Warn("cannot set up the stream on the Media Server; will retry", "stream", name, "err", err)
				failed = true
				continue
			}
			s.log.Info("stream set up on the Media Server", "stream", name)
			done[name] = sp
		}
		if failed {
			retry = time.After(bo.delay())
		} else {
			bo.reset()
		}
	}
}

// streamBody is the part of stream_config camgate sets (components/schemas/stream/
// stream_config_specific.yml name and title, stream_config_base.yml inputs,
// stream_config_media.yml password: "a password when publishing a password-protected stream").
type streamBody struct {
	Name     string        `json:"name"`
	Title    string        `json:"title"`
	Inputs   []streamInput `json:"inputs"`
	Password string        `json:"password,omitempty"`
}

type streamInput struct {
	URL string `json:"url"`
}

func (s *StreamSetup) put(ctx context.Context, sp StreamSpec) error {
	body, err := json.Marshal(streamBody{Name: sp.Name, Title: sp.Title, Inputs: []streamInput{{URL: "publish://"}},
		Password: sp.Password})
	if err != nil {
		return err
	}
	target := s.base + "/streams/" + escapeStreamPath(sp.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf(StreamSetupErrorPrefix+"PUT %s: %w", s.safe, err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case s.user != "":
		req.SetBasicAuth(s.user, s.password)
	case s.password != "":
		req.Header.Set("Authorization", "Bearer "+s.password)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf(StreamSetupErrorPrefix+"PUT streams/%s: %w", sp.Name, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf(StreamSetupErrorPrefix+"PUT streams/%s: %s: check flussonic.api username and password (edit_auth)",
			sp.Name, resp.Status)
	default:
		return fmt.Errorf(StreamSetupErrorPrefix+"PUT streams/%s: %s: %q", sp.Name, resp.Status, bytes.TrimSpace(snippet))
	}
}

// escapeStreamPath escapes each segment of a stream name, keeping its '/'.
func escapeStreamPath(name string) string {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}
