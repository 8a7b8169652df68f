package rtsp

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/sdpunmarshaler"
)

// StreamPath is one candidate RTSP path and the vendor known to serve it. Path includes any
// query, e.g. "/cam/realmonitor?channel=1&subtype=0".
type StreamPath struct {
	Vendor, Path string
}

// WellKnownStreamPaths returns the main-stream paths of the common camera vendors, most common
// first. Paths that carry credentials (Xiongmai's "/user=admin&password=...") are left out on
// purpose: FindStream sends credentials only in an Authorization header a camera asked for.
func WellKnownStreamPaths() []StreamPath {
	return []StreamPath{
		{"Hikvision", "/Streaming/Channels/101"},
		{"Dahua", "/cam/realmonitor?channel=1&subtype=0"},
		{"Reolink", "/h264Preview_01_main"},
		{"TP-Link", "/stream1"},
		{"Axis", "/axis-media/media.amp"},
		{"Uniview", "/unicast/c1/s0/live"},
		{"Hanwha", "/profile2/media.smp"},
		{"Hikvision", "/h264/ch1/main/av_stream"},
		{"Reolink", "/Preview_01_main"},
		{"Foscam", "/videoMain"},
		{"Uniview", "/media/video1"},
		{"Bosch", "/rtsp_tunnel"},
		{"Bosch", "/?h26x=4"},
		{"Vivotek", "/live.sdp"},
		{"Ubiquiti", "/s0"},
		{"Hanwha", "/profile1/media.smp"},
		{"generic", "/onvif1"},
		{"generic", "/live"},
		{"generic", "/live/main"},
		{"generic", "/live/ch00_0"},
		{"generic", "/ch0_0.h264"},
		{"generic", "/11"},
		{"generic", "/h264"},
		{"generic", "/stream0"},
		{"generic", "/1"},
		{"generic", "/0"},
		{"generic", "/video1"},
		{"generic", "/main"},
		{"generic", "/"},
	}
}

// FindStreamOptions tunes FindStream. The zero value is the polite default.
type FindStreamOptions struct {
	Paths    []StreamPath  // nil = WellKnownStreamPaths()
	Interval time.Duration // pause between requests to one camera; 0 = 250 ms
	Timeout  time.Duration // per request, connecting included; 0 = 5 s
	Logger   *slog.Logger  // nil = slog.Default()
}

// FindStreamResult is the stream FindStream found.
type FindStreamResult struct {
	URL    string // without credentials
	Vendor string
	Tracks []TrackInfo // what DESCRIBE offered; only Type, Codec, ClockRate and (from the SDP) Width, Height are set
}

var (
	// ErrNoStreamPath means no candidate path offered H.264/H.265 video.
	ErrNoStreamPath = errors.New("no known stream path answered")
	// ErrCredentialsRefused means the camera refused the credentials on several paths in a row.
	ErrCredentialsRefused = errors.New("the camera refused the credentials")
)

const (
	// maxRefusals is how many paths in a row may refuse the credentials before FindStream
	// stops: cameras lock the account after a handful of failed logins.
	maxRefusals = 3
	// noVideo is the tally key of a path whose DESCRIBE had no H.264/H.265 video track.
	noVideo = "no H.264/H.265 video"
)

// FindStream tries the paths in order against base (rtsp://host[:port], any path ignored) and
// returns the first that answers DESCRIBE with an H.264/H.265 video track.
//
// It is written for cameras that lock accounts or crash when hammered: one TCP connection at a
// time, one DESCRIBE per request with at least Interval between the end of one exchange and the
// start of the next, and it stops at the first success, when the camera does not accept
// connections, or when the credentials were refused on three paths in a row. Credentials
// (username and password, or else userinfo in base) are sent only in answer to a 401 challenge
// from the path being tried, on the connection that was challenged; redirects are never
// followed, so credentials cannot leave for another host or scheme. The whole search is
// bounded by len(paths) × (Interval + Timeout) and by ctx.
func FindStream(ctx context.Context, base, username, password string, opts FindStreamOptions) (FindStreamResult, error) {
	p, err := newPathProber(base, username, password, opts)
	if err != nil {
		return FindStreamResult{}, fmt.Errorf("find stream: %w", err)
	}
	res, err := p.run(ctx)
	if err != nil {
		return FindStreamResult{}, fmt.Errorf("find stream: %w", err)
	}
	return res, nil
}

// pathProber is the state of one FindStream call.
type pathProber struct {
	host     string // as given in base: the result URL keeps it
	addr     string // host:port dialled
	user     string
	pass     string
	paths    []StreamPath
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	last     time.Time      // end of the previous exchange, for pacing
	tally    map[string]int // outcome -> paths, for the error
	refused  []string       // consecutive paths that refused the credentials
	asked401 int            // paths that asked for credentials when we had none
}

func newPathProber(rawBase, username, password string, opts FindStreamOptions) (*pathProber, error) {
	u, err := url.Parse(rawBase)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "rtsp" {
		return nil, fmt.Errorf("scheme must be rtsp, not %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", u.Redacted())
	}
	if username == "" && u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
	}
	port := u.Port()
	if port == "" {
		port = "554"
	}
	p := &pathProber{
		host:     u.Host,
		addr:     net.JoinHostPort(u.Hostname(), port),
		user:     username,
		pass:     password,
		paths:    opts.Paths,
		interval: cmp.Or(opts.Interval, 250*time.Millisecond),
		timeout:  cmp.Or(opts.Timeout, 5*time.Second),
		log:      cmp.Or(opts.Logger, slog.Default()),
		tally:    map[string]int{},
	}
	if p.paths == nil {
		p.paths = WellKnownStreamPaths()
	}
	if len(p.paths) == 0 {
		return nil, errors.New("no paths to try")
	}
	for _, sp := range p.paths {
		if !strings.HasPrefix(sp.Path, "/") {
			return nil, fmt.Errorf("path %q must start with /", sp.Path)
		}
		if _, err := p.url(sp.Path); err != nil {
			return nil, fmt.Errorf("path %q: %w", sp.Path, err)
		}
	}
	p.log = p.log.With("camera", p.addr)
	return p, nil
}

func (p *pathProber) url(path string) (*base.URL, error) {
	return base.ParseURL("rtsp://" + p.host + path)
}

func (p *pathProber) run(ctx context.Context) (FindStreamResult, error) {
	budget := time.Duration(len(p.paths)) * (p.interval + p.timeout)
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for i, sp := range p.paths {
		res, found, err := p.tryPath(ctx, sp)
		if err != nil {
			return FindStreamResult{}, err
		}
		if found {
			p.log.Info("stream path found", "path", sp.Path, "vendor", sp.Vendor, "tried", i+1)
			return res, nil
		}
		if len(p.refused) >= maxRefusals {
			return FindStreamResult{}, fmt.Errorf("%w on %s: check the username and password",
				ErrCredentialsRefused, strings.Join(p.refused, ", "))
		}
	}
	err := fmt.Errorf("%w on %s (tried %d: %s)", ErrNoStreamPath, p.addr, len(p.paths), p.summary())
	if p.asked401 > 0 && p.user == "" {
		err = fmt.Errorf("%w; %d asked for credentials and none were given", err, p.asked401)
	}
	return FindStreamResult{}, err
}

// summary renders the tally most frequent first: "24 × 404, 3 × 401".
func (p *pathProber) summary() string {
	keys := make([]string, 0, len(p.tally))
	for k := range p.tally {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(p.tally[b], p.tally[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d × %s", p.tally[k], k)
	}
	return strings.Join(parts, ", ")
}

// tryPath asks for one path: without credentials first, then, only if that path answered 401
// and credentials are known, once more with them on the same connection. A non-nil error ends
// the search.
func (p *pathProber) tryPath(ctx context.Context, sp StreamPath) (FindStreamResult, bool, error) {
	u, err := p.url(sp.Path)
	if err != nil {
		return FindStreamResult{}, false, err
	}
	var conn describeConn
	defer conn.close()

	ans, err := p.exchange(ctx, &conn, u, nil)
	if err != nil {
		return FindStreamResult{}, false, err
	}
	if ans.status == base.StatusUnauthorized && p.user != "" {
		sender := &auth.Sender{WWWAuth: ans.wwwAuth, User: p.user, Pass: p.pass}
		if err := sender.Initialize(); err != nil {
			p.log.Debug("unusable challenge", "path", sp.Path, "error", err)
			p.tally["401 with an unusable challenge"]++
			return FindStreamResult{}, false, nil
		}
		if ans, err = p.exchange(ctx, &conn, u, sender); err != nil {
			return FindStreamResult{}, false, err
		}
		switch ans.status {
		case base.StatusUnauthorized, base.StatusForbidden:
			p.refused = append(p.refused, sp.Path)
		case 0:
			// no answer says nothing about the credentials
		default:
			p.refused = p.refused[:0]
		}
	}

	switch {
	case ans.status == 0:
		p.tally["no answer"]++
	case ans.status == base.StatusOK && ans.video:
		return FindStreamResult{URL: u.String(), Vendor: sp.Vendor, Tracks: ans.tracks}, true, nil
	case ans.status == base.StatusOK && ans.tracks != nil:
		p.log.Debug("path offers no H.264/H.265 video", "path", sp.Path, "tracks", ans.tracks)
		p.tally[noVideo]++
	case ans.status == base.StatusOK:
		p.tally["unreadable SDP"]++
	default:
		if ans.status == base.StatusUnauthorized && p.user == "" {
			p.asked401++
		}
		p.tally[strconv.Itoa(int(ans.status))]++
	}
	return FindStreamResult{}, false, nil
}

// describeConn is the one TCP connection to the camera, opened on first use.
type describeConn struct {
	nc   net.Conn
	br   *bufio.Reader
	cseq int
	used bool // a request went over it
}

func (c *describeConn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// exchange paces, then sends one DESCRIBE and reads its answer. A connection the camera
// closed after a challenge is reopened once. It returns an error only when the search must
// stop (ctx ended or the camera does not accept connections); a request that got no answer
// comes back as status 0.
func (p *pathProber) exchange(ctx context.Context, c *describeConn, u *base.URL, sender *auth.Sender) (describeAnswer, error) {
	for attempt := 0; ; attempt++ {
		if err := p.pace(ctx); err != nil {
			return describeAnswer{}, err
		}
		reused := c.used
		ans, err := p.describe(ctx, c, u, sender)
		p.last = time.Now()
		if ctx.Err() != nil {
			return describeAnswer{}, fmt.Errorf("stopped at %s: %w", u.Path, context.Cause(ctx))
		}
		var dialErr *dialError
		if errors.As(err, &dialErr) {
			return describeAnswer{}, fmt.Errorf("camera at %s does not accept connections: %w", p.addr, dialErr.err)
		}
		if err != nil {
			c.close()
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			if reused && !timedOut && attempt == 0 {
				c.used = false
				continue
			}
			p.log.Debug("no answer", "path", u.Path, "error", err)
			return describeAnswer{}, nil
		}
		p.log.Debug("DESCRIBE", "path", u.Path, "status", int(ans.status), "credentials", sender != nil)
		return ans, nil
	}
}

// pace waits until Interval has passed since the previous exchange ended.
func (p *pathProber) pace(ctx context.Context) error {
	if p.last.IsZero() {
		return nil
	}
	wait := time.Until(p.last.Add(p.interval))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopped: %w", context.Cause(ctx))
	}
}

type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// describe sends one DESCRIBE over c, connecting first if needed, within Timeout.
func (p *pathProber) describe(ctx context.Context, c *describeConn, u *base.URL, sender *auth.Sender) (describeAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if c.nc == nil {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return describeAnswer{}, &dialError{err}
		}
		c.nc, c.br, c.cseq = nc, bufio.NewReader(nc), 0
	}
	deadline, _ := ctx.Deadline()
	_ = c.nc.SetDeadline(deadline)
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c.cseq++
	req := &base.Request{
		Method: base.Describe,
		URL:    u,
		Header: base.Header{
			"CSeq":       base.HeaderValue{strconv.Itoa(c.cseq)},
			"Accept":     base.HeaderValue{"application/sdp"},
			"User-Agent": base.HeaderValue{"camgate"},
		},
	}
	if sender != nil {
		sender.AddAuthorization(req)
	}
	b, err := req.Marshal()
	if err != nil {
		return describeAnswer{}, err
	}
	c.used = true
	if _, err := c.nc.Write(b); err != nil {
		return describeAnswer{}, err
	}
	return readDescribeAnswer(c.br)
}

// describeAnswer is what a DESCRIBE told about a path.
type describeAnswer struct {
	status  base.StatusCode
	wwwAuth base.HeaderValue
	tracks  []TrackInfo // nil unless a 200 carried a readable SDP
	video   bool        // the SDP offers H.264 or H.265 video
}

// readDescribeAnswer reads one response. Sizes are bounded by gortsplib's reader (header
// count and length, 128 KiB body); a 200 whose SDP cannot be read is returned without tracks.
func readDescribeAnswer(br *bufio.Reader) (describeAnswer, error) {
	var res base.Response
	if err := res.Unmarshal(br); err != nil {
		return describeAnswer{}, fmt.Errorf("read DESCRIBE answer: %w", err)
	}
	ans := describeAnswer{status: res.StatusCode, wwwAuth: res.Header["WWW-Authenticate"]}
	if res.StatusCode != base.StatusOK {
		return ans, nil
	}
	if ct := res.Header["Content-Type"]; len(ct) != 1 || strings.TrimSpace(strings.Split(ct[0], ";")[0]) != "application/sdp" {
		return ans, nil
	}
	ssd, err := sdpunmarshaler.Unmarshal(res.Body)
	if err != nil {
		return ans, nil
	}
	var desc description.Session
	if err := desc.Unmarshal2(ssd); err != nil {
		return ans, nil
	}
	ans.tracks = []TrackInfo{}
	_, err = selectTracks(&desc, false)
	ans.video = err == nil
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			t := TrackInfo{Type: string(m.Type), Codec: codecName(f), ClockRate: f.ClockRate()}
			switch f := f.(type) {
			case *format.H264:
				t.Width, t.Height, _ = parseSPS(codecH264, f.SPS)
			case *format.H265:
				t.Width, t.Height, _ = parseSPS(codecH265, f.SPS)
			}
			ans.tracks = append(ans.tracks, t)
		}
	}
	return ans, nil
}
