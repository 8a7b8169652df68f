package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib"
)

// This file holds what makes the media server act like Flussonic rather than like any RTSP
// server. Each rule cites where Flussonic writes it down; where it does not, the comment says so.

// StreamsAPIPath is the Media Server API's streams collection (openapi-demo,
// openapi/flussonic/paths/stream/stream.yml under the /streamer/api/v3 base).
const StreamsAPIPath = "/streamer/api/v3/streams/"

// Stream is one stream configured at the stand-in, as stream_config names its fields.
type Stream struct {
	Name     string    `json:"name"`
	Title    string    `json:"title,omitempty"`
	Inputs   []Input   `json:"inputs"`
	Password string    `json:"password,omitempty"`
	Created  time.Time `json:"-"`
	Updates  int       `json:"-"` // PUTs after the one that created it
}

// Input is one of a stream's inputs (components/schemas/stream/stream_input.yml).
type Input struct {
	URL string `json:"url"`
}

// takesPublish: a stream with the input publish:// accepts publishing ("Publishing to a static
// stream", https://flussonic.com/doc/live-streaming/publishing-video-to-the-server/).
func (s Stream) takesPublish() bool {
	return slices.ContainsFunc(s.Inputs, func(in Input) bool { return strings.HasPrefix(in.URL, "publish://") })
}

// publishCodecs is Flussonic's supported-sources table as SPEC §4 reads it: over RTSP H.264 and
// H.265 with AAC, PCMA or PCMU; over RTMP H.264 with AAC or PCMU.
var publishCodecs = map[string][]string{
	"rtsp": {"h264", "h265", "aac", "pcma", "pcmu"},
	"rtmp": {"h264", "aac", "pcmu"},
}

// PublishRefusal is why the stand-in refused a publish, with the status it answered.
type PublishRefusal struct {
	Status int // an RTSP status; for RTMP the connection is closed instead
	Reason string
}

func (r *PublishRefusal) Error() string { return fmt.Sprintf("%d %s", r.Status, r.Reason) }

// AddStream configures a stream as flussonic.conf's `stream NAME { input publish://; password P; }`.
func (m *MediaServer) AddStream(s Stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.Created.IsZero() {
		s.Created = time.Now()
	}
	m.streams[s.Name] = s
}

// StreamConfig returns a configured stream.
func (m *MediaServer) StreamConfig(name string) (Stream, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[name]
	return s, ok
}

// Refusals returns every publish refused so far, by stream name.
func (m *MediaServer) Refusals() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]string, len(m.refusals))
	for k, v := range m.refusals {
		out[k] = slices.Clone(v)
	}
	return out
}

// admitLocked decides a publish of name over proto with the raw query and the codecs of its
// tracks. Streams are checked only when RequireStream is set or the stream was configured, so
// a server without configuration takes any name, as a Flussonic with a catch-all template.
func (m *MediaServer) admitLocked(proto, name, rawQuery string, codecNames []string) *PublishRefusal {
	refuse := func(status int, format string, args ...any) *PublishRefusal {
		r := &PublishRefusal{Status: status, Reason: fmt.Sprintf(format, args...)}
		m.refusals[name] = append(m.refusals[name], proto+": "+r.Error())
		m.log.Info("sim media server: publish refused", "stream", name, "proto", proto, "why", r.Reason)
		return r
	}
	if name == "" {
		return refuse(400, "publish without a stream name")
	}
	for _, c := range codecNames {
		if !m.cfg.AnyCodec && !slices.Contains(publishCodecs[proto], c) {
			// Flussonic's table says what it takes; what it answers to the rest is not
			// written down. 415 names the cause.
			return refuse(415, "codec %s is not taken over %s", c, strings.ToUpper(proto))
		}
	}
	s, configured := m.streams[name]
	if !configured {
		if m.cfg.RequireStream {
			// A publish to a name with no stream (or template) is refused; the status is not
			// written down.
			return refuse(404, "no stream %q with input publish://", name)
		}
		return nil
	}
	if !s.takesPublish() {
		return refuse(403, "stream %q has no input publish://", name)
	}
	if s.Password != "" {
		// "Authorization for stream publishing": the stream's password, given as the
		// publish URL's password query.
		q, _ := url.ParseQuery(rawQuery)
		if q.Get("password") != s.Password {
			return refuse(401, "wrong or missing publish password for stream %q", name)
		}
	}
	return nil
}

// rtmpStreamName is the stream an RTMP publish goes to, as Flussonic's publishing page says:
// rtmp://host/NAME, rtmp://host/static/NAME (and rtmp://host/rtmp/NAME: "Flussonic cuts rtmp
// from the application name"), rtmp://host/APP/NAME for the stream APP/NAME. The query may be on
// the application (tcUrl) or on the stream key; both are read.
func rtmpStreamName(joined *url.URL) (name, rawQuery string) {
	path, query := joined.Path, joined.RawQuery
	if before, after, ok := strings.Cut(query, "/"); ok { // tcUrl?query + "/" + key
		query, path = before, path+"/"+after
	}
	if before, after, ok := strings.Cut(path, "?"); ok {
		path, query = before, strings.TrimPrefix(query+"&"+after, "&")
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > 1 && (segs[0] == "static" || segs[0] == "rtmp") {
		segs = segs[1:]
	}
	// A client given the one URL rtmp://host/NAME splits it as ffmpeg does: application NAME,
	// stream NAME. Flussonic documents that URL for the stream NAME; how it tells that apart
	// from a stream NAME/NAME is not written down, so two equal segments are the stream NAME.
	if len(segs) == 2 && segs[0] == segs[1] {
		segs = segs[1:]
	}
	return strings.Join(segs, "/"), query
}

// serveRTMP takes RTMP publishers on ln until ctx ends.
func (m *MediaServer) serveRTMP(ctx context.Context, ln net.Listener) {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			if err := m.rtmpPublish(c); err != nil {
				m.log.Debug("sim media server: rtmp", "remote", c.RemoteAddr(), "err", err)
			}
		}()
	}
}

func (m *MediaServer) rtmpPublish(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	sc := &gortmplib.ServerConn{RW: c}
	if err := sc.Initialize(); err != nil {
		return err
	}
	if err := sc.AcceptConn(); err != nil {
		return err
	}
	if !sc.Publish {
		_ = sc.RejectAction()
		return fmt.Errorf("only publishing is served over RTMP here")
	}
	name, query := rtmpStreamName(sc.URL)
	m.mu.Lock()
	refusal := m.admitLocked("rtmp", name, query, nil)
	m.mu.Unlock()
	if refusal != nil {
		_ = sc.RejectAction()
		return refusal
	}
	if err := sc.AcceptAction(); err != nil {
		return err
	}
	in := &rtmpIngest{m: m, name: name, query: query}
	defer in.end()
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		msg, err := sc.Read()
		if err != nil {
			return err
		}
		if err := in.message(msg); err != nil {
			return err
		}
	}
}

// streamsAPI serves PUT and GET <StreamsAPIPath><name> with Basic auth, as stream_save and
// stream_get: a PUT creates the stream or updates only the fields it names.
func (m *MediaServer) streamsAPI(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != m.cfg.APIUser || p != m.cfg.APIPass {
		w.Header().Set("WWW-Authenticate", `Basic realm="flussonic"`)
		http.Error(w, `{"errors":[{"title":"unauthorized"}]}`, http.StatusUnauthorized)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, StreamsAPIPath)
	if name == "" {
		http.Error(w, `{"errors":[{"title":"no stream name"}]}`, http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, exists := m.streams[name]
	switch r.Method {
	case http.MethodGet:
		if !exists {
			http.Error(w, `{"errors":[{"title":"not found"}]}`, http.StatusNotFound)
			return
		}
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		var patch struct {
			Name     *string  `json:"name"`
			Title    *string  `json:"title"`
			Inputs   *[]Input `json:"inputs"`
			Password *string  `json:"password"`
		}
		if err != nil || json.Unmarshal(body, &patch) != nil {
			http.Error(w, `{"errors":[{"title":"not a stream_config"}]}`, http.StatusBadRequest)
			return
		}
		if !exists {
			if patch.Name == nil || *patch.Name != name {
				// "To create a new stream the property name is required."
				http.Error(w, `{"errors":[{"title":"name is required to create a stream"}]}`, http.StatusBadRequest)
				return
			}
			s = Stream{Name: name, Created: time.Now()}
		} else {
			s.Updates++
		}
		if patch.Title != nil {
			s.Title = *patch.Title
		}
		if patch.Inputs != nil {
			s.Inputs = *patch.Inputs
		}
		if patch.Password != nil {
			s.Password = *patch.Password
		}
		m.streams[name] = s
	default:
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}
