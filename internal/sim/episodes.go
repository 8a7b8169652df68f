package sim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// EpisodesPath is Flussonic Central's episodes collection (openapi-demo,
// openapi/flussonic/central.yml and paths/central/episode.yml: PUT /episodes/{episode_id}
// under the /central/api/v3 base).
const EpisodesPath = "/central/api/v3/episodes"

// maxEpisodeBytes bounds one PUT: a 64 KB base64 preview and a few fields.
const maxEpisodeBytes = 128 << 10

// EpisodeSinkConfig configures the Central episodes stand-in.
type EpisodeSinkConfig struct {
	Addr string // "127.0.0.1:0" when empty
	// Header, when set, must be on every request (Central's API takes a Bearer token).
	Header http.Header
	Logger *slog.Logger
}

// EpisodePut is one accepted PUT, as Central saved it.
type EpisodePut struct {
	EpisodeID   int64  `json:"episode_id"`
	Media       string `json:"media"`
	EpisodeType string `json:"episode_type"`
	OpenedAt    int64  `json:"opened_at"`
	UpdatedAt   int64  `json:"updated_at"`
	ClosedAt    *int64 `json:"closed_at"`
	Preview     []byte `json:"-"` // the decoded preview image
}

// EpisodeSink stands in for Central's episode_save: it takes PUT <EpisodesPath>/<episode_id>
// with an episode object (components/schemas/episodes/episode_base.yml, episode_generic.yml),
// checks it as the schema says and keeps every PUT it answered 200, in order.
type EpisodeSink struct {
	cfg EpisodeSinkConfig
	log *slog.Logger
	ln  net.Listener

	mu   sync.Mutex
	puts []EpisodePut
}

// NewEpisodeSink binds the listener; Run serves it.
func NewEpisodeSink(cfg EpisodeSinkConfig) (*EpisodeSink, error) {
	ln, err := listenTCP("sim episodes", cfg.Addr)
	if err != nil {
		return nil, err
	}
	return &EpisodeSink{cfg: cfg, log: loggerOrDiscard(cfg.Logger), ln: ln}, nil
}

// URL is the episodes collection: a sink's url with format: episodes.
func (s *EpisodeSink) URL() string { return dialURL("http", s.ln) + EpisodesPath }

// Puts returns every accepted PUT so far.
func (s *EpisodeSink) Puts() []EpisodePut {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]EpisodePut(nil), s.puts...)
}

// Run serves until ctx ends.
func (s *EpisodeSink) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT "+EpisodesPath+"/{episode_id}", s.put)
	return serveHTTP(ctx, s.ln, mux, s.log, "sim episodes")
}

func (s *EpisodeSink) put(w http.ResponseWriter, r *http.Request) {
	if err := checkHeader(r, s.cfg.Header); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEpisodeBytes))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	ep, err := ParseEpisode(r.PathValue("episode_id"), body)
	if err != nil {
		s.log.Info("sim episodes: refused", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"title": err.Error()}}})
		return
	}
	s.mu.Lock()
	s.puts = append(s.puts, ep)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// episodeFields are episode_base.yml's and episode_generic.yml's properties.
var episodeFields = map[string]bool{
	"episode_id": true, "media": true, "close_reason": true, "opened_at": true, "started_at": true,
	"updated_at": true, "closed_at": true, "preview": true, "playback_token": true, "episode_type": true,
}

// ParseEpisode checks one PUT body against the schema: the required episode_id (an integer,
// the one in the path), media, opened_at and updated_at (utc_ms); closed_at not before
// opened_at; episode_type generic; preview base64 of a JPEG within 64 KB.
func ParseEpisode(pathID string, body []byte) (EpisodePut, error) {
	var ep EpisodePut
	id, err := strconv.ParseInt(pathID, 10, 64)
	if err != nil || id <= 0 || id >= 1<<53 {
		return ep, fmt.Errorf("episode_id %q in the path is not a snowflake id", pathID)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return ep, errors.New("body is not a JSON object")
	}
	for k := range obj {
		if !episodeFields[k] {
			return ep, fmt.Errorf("field %q is not in the episode schema", k)
		}
	}
	intField := func(k string, required bool) (*int64, error) {
		v, ok := obj[k]
		if !ok {
			if required {
				return nil, fmt.Errorf("%s is required", k)
			}
			return nil, nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s must be an integer", k)
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s must be an integer, not %s", k, n)
		}
		return &i, nil
	}
	bodyID, err := intField("episode_id", true)
	if err != nil {
		return ep, err
	}
	if *bodyID != id {
		return ep, fmt.Errorf("episode_id %d in the body is not %d of the path", *bodyID, id)
	}
	ep.EpisodeID = id
	media, _ := obj["media"].(string)
	if media == "" {
		return ep, errors.New("media is required, a stream name")
	}
	ep.Media = media
	times := map[string]*int64{}
	for _, k := range []string{"opened_at", "updated_at", "closed_at", "started_at"} {
		v, err := intField(k, k == "opened_at" || k == "updated_at")
		if err != nil {
			return ep, err
		}
		if v != nil && (*v < 1_000_000_000_000 || *v > 10_000_000_000_000) {
			return ep, fmt.Errorf("%s %d is not utc_ms", k, *v)
		}
		times[k] = v
	}
	ep.OpenedAt, ep.UpdatedAt, ep.ClosedAt = *times["opened_at"], *times["updated_at"], times["closed_at"]
	if ep.UpdatedAt < ep.OpenedAt || ep.ClosedAt != nil && *ep.ClosedAt < ep.OpenedAt {
		return ep, errors.New("updated_at and closed_at must not be before opened_at")
	}
	if t, ok := obj["episode_type"]; ok {
		if t != "generic" {
			return ep, fmt.Errorf("episode_type %v: a stream episode is generic", t)
		}
		ep.EpisodeType = "generic"
	}
	if p, ok := obj["preview"]; ok {
		ps, ok := p.(string)
		if !ok || len(ps) > 64<<10 {
			return ep, errors.New("preview must be base64 of at most 64 KB")
		}
		img, err := base64.StdEncoding.DecodeString(ps)
		if err != nil || !bytes.HasPrefix(img, []byte{0xff, 0xd8, 0xff}) {
			return ep, errors.New("preview is not base64 of a JPEG")
		}
		ep.Preview = img
	}
	return ep, nil
}

// serveHTTP runs an HTTP stand-in on ln until ctx ends, with the timeouts of a real server.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, name string) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
