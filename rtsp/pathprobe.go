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
	// Auth "basic" lets the camera have its password in Basic over rtsp:// (see RelayConfig.Auth);
	// otherwise a path that asks for Basic gets no password.
	Auth string
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
	// ErrCredentialsRefused means the camera refused the credentials maxRefusals times.
	ErrCredentialsRefused = errors.New("the camera refused the credentials")
	// ErrNoRTSPAnswer is wrapped beside ErrNoStreamPath when no path got any RTSP answer: the
	// port took connections but hung up or spoke something else, which a caller that must not
	// tell an open port from a closed one reports like no answer at all.
	ErrNoRTSPAnswer = errors.New("nothing answered in RTSP")
)

const (
	// maxRefusals is how many credentialed requests the camera may refuse before FindStream
	// stops: cameras lock the account after 5-7 failed logins, whichever paths they were on.
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
// connections, or when the camera refused the credentials three times. Credentials (username
// and password, or else userinfo in base) are sent only in answer to a Digest challenge (Basic
// too when opts.Auth is "basic") from the path being tried, on the connection that was
// challenged; redirects are never followed, so credentials cannot leave for another host or
// scheme. It speaks through rtspConn, the client every camera session uses. The whole search is
// bounded by (len(paths)+1) × (Interval + Timeout) (one for connecting and scheduling) and by ctx.
func FindStream(
	ctx context.Context, base, username, password string, opts FindStreamOptions,
) (FindStreamResult, error) {
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
	basic    bool // auth: basic
	paths    []StreamPath
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	last     time.Time      // end of the previous exchange, for pacing
	tally    map[string]int // outcome -> paths, for the error
	refused  []string       // paths that refused the credentials
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
		basic:    opts.Auth == "basic",
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
	budget := time.Duration(len(p.paths)+1) * (p.interval + p.timeout)
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
	if len(p.paths) > 0 && p.tally["no answer"] == len(p.paths) {
		err = fmt.Errorf("%w: %w", err, ErrNoRTSPAnswer)
	}
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

	ans, err := p.exchange(ctx, &conn, u)
	if err != nil {
		return FindStreamResult{}, false, err
	}
	if ans.status == base.StatusUnauthorized && p.user != "" {
		if err := conn.authenticate(ans.wwwAuth, p.user, p.pass, !p.basic); err != nil {
			p.log.Debug("challenge not answered", "path", sp.Path, "error", err)
			if errors.Is(err, ErrBasicRefused) {
				p.tally["401 asking for Basic (password not sent; auth: basic allows it)"]++
			} else {
				p.tally["401 with an unusable challenge"]++
			}
			return FindStreamResult{}, false, nil
		}
		if ans, err = p.exchange(ctx, &conn, u); err != nil {
			return FindStreamResult{}, false, err
		}
		if ans.status == base.StatusUnauthorized || ans.status == base.StatusForbidden {
			p.refused = append(p.refused, sp.Path)
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

// describeConn is the one connection to the camera for one path, opened on first use.
type describeConn struct {
	c      *rtspConn
	sender *auth.Sender // the answer to this path's challenge, kept across a reopened connection
	used   bool         // a request went over it
}

func (c *describeConn) close() {
	if c.c != nil {
		c.c.close()
		c.c = nil
	}
}

// authenticate prepares the answer to the path's challenge under the camera auth policy.
func (c *describeConn) authenticate(wwwAuth base.HeaderValue, user, pass string, refuseBasic bool) error {
	if c.c == nil {
		return errors.New("connection closed after the challenge")
	}
	c.c.user, c.c.pass, c.c.hasUser, c.c.refuseBasic = user, pass, true, refuseBasic
	if err := c.c.authenticate(wwwAuth); err != nil {
		return err
	}
	c.sender = c.c.sender
	return nil
}

// exchange paces, then sends one DESCRIBE and reads its answer. A connection the camera
// closed after a challenge is reopened once. It returns an error only when the search must
// stop (ctx ended or the camera does not accept connections); a request that got no answer
// comes back as status 0.
func (p *pathProber) exchange(ctx context.Context, c *describeConn, u *base.URL) (describeAnswer, error) {
	for attempt := 0; ; attempt++ {
		if err := p.pace(ctx); err != nil {
			return describeAnswer{}, err
		}
		reused := c.used
		ans, err := p.describe(ctx, c, u)
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
		p.log.Debug("DESCRIBE", "path", u.Path, "status", int(ans.status), "credentials", c.sender != nil)
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
func (p *pathProber) describe(ctx context.Context, c *describeConn, u *base.URL) (describeAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if c.c == nil {
		rc, err := dialRTSP(ctx, (*url.URL)(u), p.timeout, 4096, 1024)
		if err != nil {
			return describeAnswer{}, &dialError{errors.Unwrap(err)}
		}
		rc.sender = c.sender
		c.c = rc
	}
	rc := c.c
	stop := context.AfterFunc(ctx, func() { _ = rc.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.used = true
	res, err := rc.roundTrip(base.Describe, u, base.Header{"Accept": base.HeaderValue{"application/sdp"}}, nil)
	if err != nil {
		return describeAnswer{}, fmt.Errorf("read DESCRIBE answer: %w", err)
	}
	return describeAnswerOf(res), nil
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
	return describeAnswerOf(&res), nil
}

// describeAnswerOf is what a DESCRIBE's answer tells about a path.
func describeAnswerOf(res *base.Response) describeAnswer {
	ans := describeAnswer{status: res.StatusCode, wwwAuth: res.Header["WWW-Authenticate"]}
	if res.StatusCode != base.StatusOK {
		return ans
	}
	if ct := res.Header["Content-Type"]; len(ct) != 1 ||
		strings.TrimSpace(strings.Split(ct[0], ";")[0]) != "application/sdp" {
		return ans
	}
	ssd, err := sdpunmarshaler.Unmarshal(res.Body)
	if err != nil {
		return ans
	}
	var desc description.Session
	if err := desc.Unmarshal2(ssd); err != nil {
		return ans
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
	return ans
}
