package rtsp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
)

// pathTestSPS declares 1920x1080 H.264.
var pathTestSPS = []byte{
	0x67, 0x64, 0x00, 0x29, 0xac, 0x13, 0x31, 0x40, 0x78, 0x04, 0x47, 0xde, 0x03, 0xea, 0x02, 0x02,
	0x03, 0xe0, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x52,
}

// pathCamera is a loopback RTSP camera that serves DESCRIBE on a few paths and records, per
// path (query included), every request and whether it carried an Authorization header.
type pathCamera struct {
	srv  *gortsplib.Server
	addr string

	user, pass   string // when user is set, served paths ask for Digest credentials
	challengeAll bool   // unknown paths ask for credentials too, as Hikvision does

	mu       sync.Mutex
	streams  map[string]*gortsplib.ServerStream
	requests map[string]int
	withAuth map[string]int
	authHdrs []string
	times    []time.Time
}

func newPathCamera(t *testing.T, user, pass string, challengeAll bool) *pathCamera {
	t.Helper()
	c := &pathCamera{
		addr: freeAddr(t), user: user, pass: pass, challengeAll: challengeAll,
		streams: map[string]*gortsplib.ServerStream{}, requests: map[string]int{}, withAuth: map[string]int{},
	}
	c.srv = &gortsplib.Server{
		Handler: c, RTSPAddress: c.addr, ReadTimeout: 5 * time.Second,
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodDigestMD5},
	}
	if err := c.srv.Start(); err != nil {
		t.Fatalf("start test RTSP server: %v", err)
	}
	t.Cleanup(c.srv.Close)
	return c
}

func (c *pathCamera) base() string { return "rtsp://" + c.addr }

// serve makes path (query included) answer DESCRIBE with the given medias.
func (c *pathCamera) serve(t *testing.T, path string, medias ...*description.Media) {
	t.Helper()
	st := &gortsplib.ServerStream{Server: c.srv, Desc: &description.Session{Medias: medias}}
	if err := st.Initialize(); err != nil {
		t.Fatalf("stream for %s: %v", path, err)
	}
	t.Cleanup(st.Close)
	c.mu.Lock()
	c.streams[path] = st
	c.mu.Unlock()
}

func h264Media() *description.Media {
	return &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
		&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: pathTestSPS, PPS: []byte{0x68, 0xee, 0x3c, 0x80}},
	}}
}

func metadataMedia(t *testing.T) *description.Media {
	f := &format.Generic{PayloadTyp: 107, RTPMa: "vnd.onvif.metadata/90000"}
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	return &description.Media{Type: description.MediaTypeApplication, Formats: []format.Format{f}}
}

func (c *pathCamera) OnDescribe(
	ctx *gortsplib.ServerHandlerOnDescribeCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	key := ctx.Path
	if ctx.Query != "" {
		key += "?" + ctx.Query
	}
	c.mu.Lock()
	c.requests[key]++
	if h := ctx.Request.Header["Authorization"]; len(h) > 0 {
		c.withAuth[key]++
		c.authHdrs = append(c.authHdrs, h[0])
	}
	c.times = append(c.times, time.Now())
	st := c.streams[key]
	c.mu.Unlock()

	if c.user != "" && (st != nil || c.challengeAll) && !ctx.Conn.VerifyCredentials(ctx.Request, c.user, c.pass) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (c *pathCamera) counts(path string) (requests, withAuth int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[path], c.withAuth[path]
}

func paths(ps ...string) []StreamPath {
	out := make([]StreamPath, len(ps))
	for i, p := range ps {
		out[i] = StreamPath{Vendor: "v" + p, Path: p}
	}
	return out
}

func fastOptions() FindStreamOptions {
	return FindStreamOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

func TestFindStreamSendsCredentialsOnlyWhereAsked(t *testing.T) {
	const dahua = "/cam/realmonitor?channel=1&subtype=0"
	cam := newPathCamera(t, "admin", "s3cret", false)
	cam.serve(t, dahua, h264Media())

	res, err := FindStream(context.Background(), cam.base()+"/ignored", "admin", "s3cret", fastOptions())
	if err != nil {
		t.Fatalf("FindStream: %v", err)
	}
	if want := cam.base() + dahua; res.URL != want || res.Vendor != "Dahua" {
		t.Errorf("found %q (%s), want %q (Dahua)", res.URL, res.Vendor, want)
	}
	if len(res.Tracks) != 1 || res.Tracks[0].Codec != "H264" || res.Tracks[0].Width != 1920 ||
		res.Tracks[0].Height != 1080 {
		t.Errorf("tracks = %+v, want one H264 1920x1080", res.Tracks)
	}
	// The Hikvision path comes first and answers 404: it must never see the credentials.
	if n, auth := cam.counts("/Streaming/Channels/101"); n != 1 || auth != 0 {
		t.Errorf("404 path saw %d requests, %d with credentials; want 1 and 0", n, auth)
	}
	if n, auth := cam.counts(dahua); n != 2 || auth != 1 {
		t.Errorf("protected path saw %d requests, %d with credentials; want 2 (challenge, answer) and 1", n, auth)
	}
	for _, h := range cam.authHdrs {
		if !strings.HasPrefix(h, "Digest ") || strings.Contains(h, "s3cret") {
			t.Errorf("Authorization = %q, want a Digest answer without the password", h)
		}
	}
}

func TestFindStreamAnswersEveryChallengeWithGoodCredentials(t *testing.T) {
	cam := newPathCamera(t, "admin", "s3cret", true)
	cam.serve(t, "/c", h264Media())

	res, err := FindStream(context.Background(), cam.base(), "admin", "s3cret", FindStreamOptions{
		Paths: paths("/a", "/b", "/c"), Interval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("FindStream: %v", err)
	}
	if res.URL != cam.base()+"/c" {
		t.Errorf("found %q, want /c", res.URL)
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		if n, auth := cam.counts(p); n != 2 || auth != 1 {
			t.Errorf("%s saw %d requests, %d with credentials; want 2 and 1", p, n, auth)
		}
	}
}

func TestFindStreamSkipsMetadataOnlyPath(t *testing.T) {
	cam := newPathCamera(t, "", "", false)
	cam.serve(t, "/meta", metadataMedia(t))
	cam.serve(t, "/video", metadataMedia(t), h264Media())

	res, err := FindStream(context.Background(), cam.base(), "", "", FindStreamOptions{
		Paths: paths("/meta", "/video"), Interval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("FindStream: %v", err)
	}
	if res.Vendor != "v/video" || len(res.Tracks) != 2 {
		t.Errorf("found %+v, want /video with its metadata and video tracks", res)
	}
}

func TestFindStreamErrorsInWords(t *testing.T) {
	tests := []struct {
		name         string
		camUser      string
		challengeAll bool
		serve        string // path served with metadata only
		user, pass   string
		paths        []StreamPath
		wantIs       error
		want         string
		untouched    []string // paths that must never be asked
	}{
		{
			name:   "nothing there",
			paths:  paths("/a", "/b", "/c"),
			wantIs: ErrNoStreamPath,
			want:   "no known stream path answered on %s (tried 3: 3 × 404)",
		},
		{
			name:    "mixed answers",
			camUser: "admin", serve: "/meta",
			paths:  paths("/a", "/meta", "/b"),
			wantIs: ErrNoStreamPath,
			want:   "(tried 3: 2 × 404, 1 × 401); 1 asked for credentials and none were given",
		},
		{
			name:    "no video",
			serve:   "/meta",
			paths:   paths("/meta", "/a"),
			wantIs:  ErrNoStreamPath,
			want:    "(tried 2: 1 × 404, 1 × no H.264/H.265 video)",
			camUser: "",
		},
		{
			name:    "wrong password",
			camUser: "admin", challengeAll: true,
			user: "admin", pass: "wrong",
			paths:     paths("/a", "/b", "/c", "/d", "/e"),
			wantIs:    ErrCredentialsRefused,
			want:      "the camera refused the credentials on /a, /b, /c: check the username and password",
			untouched: []string{"/d", "/e"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := newPathCamera(t, tt.camUser, "right", tt.challengeAll)
			if tt.serve != "" {
				cam.serve(t, tt.serve, metadataMedia(t))
			}
			_, err := FindStream(context.Background(), cam.base(), tt.user, tt.pass, FindStreamOptions{
				Paths: tt.paths, Interval: 5 * time.Millisecond,
			})
			want := strings.ReplaceAll(tt.want, "%s", cam.addr)
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), want) {
				t.Fatalf("error = %v, want %v containing %q", err, tt.wantIs, want)
			}
			for _, p := range tt.untouched {
				if n, _ := cam.counts(p); n != 0 {
					t.Errorf("%s was asked %d times after the credentials were refused", p, n)
				}
			}
		})
	}
}

func TestFindStreamStopsAtRefusedConnection(t *testing.T) {
	addr := freeAddr(t) // closed again: nothing listens there
	opts := FindStreamOptions{Interval: time.Second}
	start := time.Now()
	_, err := FindStream(context.Background(), "rtsp://"+addr, "admin", "x", opts)
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "does not accept connections") {
		t.Fatalf("error = %v, want a refused connection", err)
	}
	// Trying every path would take at least len(paths) × Interval.
	if full := time.Duration(len(WellKnownStreamPaths())) * opts.Interval; time.Since(start) > full/2 {
		t.Errorf("FindStream took %v, it should stop at the first refusal", time.Since(start))
	}
}

func TestFindStreamHonoursInterval(t *testing.T) {
	cam := newPathCamera(t, "", "", false)
	const interval = 100 * time.Millisecond
	_, err := FindStream(context.Background(), cam.base(), "", "", FindStreamOptions{
		Paths: paths("/a", "/b", "/c", "/d", "/e"), Interval: interval,
	})
	if !errors.Is(err, ErrNoStreamPath) {
		t.Fatalf("error = %v, want ErrNoStreamPath", err)
	}
	cam.mu.Lock()
	defer cam.mu.Unlock()
	if len(cam.times) != 5 {
		t.Fatalf("camera saw %d requests, want 5", len(cam.times))
	}
	// Pacing starts when an answer arrives, so the camera sees each request at least Interval
	// after the previous one, however loaded the machine is.
	for i := 1; i < len(cam.times); i++ {
		if gap := cam.times[i].Sub(cam.times[i-1]); gap < interval {
			t.Errorf("request %d came %v after the previous one, want at least %v", i+1, gap, interval)
		}
	}
}

// silentCamera accepts connections and never answers.
func silentCamera(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "rtsp://" + ln.Addr().String()
}

func TestFindStreamMovesOnWhenAPathNeverAnswers(t *testing.T) {
	_, err := FindStream(context.Background(), silentCamera(t), "", "", FindStreamOptions{
		Paths: paths("/a", "/b"), Interval: 5 * time.Millisecond, Timeout: 200 * time.Millisecond,
	})
	if !errors.Is(err, ErrNoStreamPath) || !strings.Contains(err.Error(), "(tried 2: 2 × no answer)") {
		t.Fatalf("error = %v, want 2 paths without answer", err)
	}
}

func TestFindStreamStopsWhenContextEnds(t *testing.T) {
	base := silentCamera(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := FindStream(ctx, base, "", "", FindStreamOptions{Timeout: time.Minute})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FindStream did not return after its context was cancelled")
	}
}

func TestFindStreamRejectsBadInput(t *testing.T) {
	tests := []struct {
		base  string
		paths []StreamPath
		want  string
	}{
		{"http://10.0.0.5", nil, `scheme must be rtsp, not "http"`},
		{"rtsp://", nil, "has no host"},
		{"rtsp://10.0.0.5", []StreamPath{}, "no paths to try"},
		{"rtsp://10.0.0.5", paths("live"), `path "live" must start with /`},
	}
	for _, tt := range tests {
		_, err := FindStream(context.Background(), tt.base, "", "", FindStreamOptions{Paths: tt.paths})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("FindStream(%q, %v) error = %v, want %q", tt.base, tt.paths, err, tt.want)
		}
	}
}

func TestWellKnownStreamPaths(t *testing.T) {
	ps := WellKnownStreamPaths()
	if len(ps) == 0 || len(ps) > 30 {
		t.Fatalf("%d paths, want 1..30", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if !strings.HasPrefix(p.Path, "/") || p.Vendor == "" {
			t.Errorf("bad entry %+v", p)
		}
		if strings.Contains(strings.ToLower(p.Path), "password") || strings.Contains(p.Path, "user=") {
			t.Errorf("%q carries credentials in the path", p.Path)
		}
		if seen[p.Path] {
			t.Errorf("%q listed twice", p.Path)
		}
		seen[p.Path] = true
	}
	ps[0].Path = "/changed"
	if WellKnownStreamPaths()[0].Path == "/changed" {
		t.Error("WellKnownStreamPaths shares its slice between callers")
	}
}

func FuzzReadDescribeAnswer(f *testing.F) {
	f.Add([]byte("RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n"))
	f.Add([]byte("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"IPC\", nonce=\"abc\"\r\n\r\n"))
	sdp := "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n"
	f.Add([]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: " +
		strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp))
	f.Fuzz(func(t *testing.T, data []byte) {
		ans, err := readDescribeAnswer(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		if ans.video && (ans.status != base.StatusOK || len(ans.tracks) == 0) {
			t.Errorf("answer %+v claims video without a 200 and tracks", ans)
		}
	})
}

func TestReadDescribeAnswer(t *testing.T) {
	sdp := func(media string) string {
		return "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + media
	}
	ok := func(ct, body string) string {
		return "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: " + ct + "\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	tests := []struct {
		name    string
		in      string
		status  base.StatusCode
		video   bool
		codecs  string // of the tracks, comma separated; "-" = SDP unreadable
		wantErr bool
	}{
		{"H.265 video", ok("application/sdp; charset=utf-8", sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n")),
			200, true, "H265", false},
		{"H.264 and metadata", ok("application/sdp", sdp("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"+
			"m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n")),
			200, true, "H264,vnd.onvif.metadata/90000", false},
		{"MJPEG only", ok("application/sdp", sdp("m=video 0 RTP/AVP 26\r\n")), 200, false, "JPEG/90000", false},
		{"not SDP", ok("text/html", "<html>"), 200, false, "-", false},
		{"broken SDP", ok("application/sdp", "m=nonsense"), 200, false, "-", false},
		{"challenge", "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"c\"\r\n\r\n",
			401, false, "-", false},
		{"HTTP server", "HTTP/1.1 400 Bad Request\r\n\r\n", 0, false, "-", true},
		{"cut short", "RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nv=0", 0, false, "-", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, err := readDescribeAnswer(bufio.NewReader(strings.NewReader(tt.in)))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			codecs := "-"
			if ans.tracks != nil {
				var cs []string
				for _, tr := range ans.tracks {
					cs = append(cs, tr.Codec)
				}
				codecs = strings.Join(cs, ",")
			}
			if ans.status != tt.status || ans.video != tt.video || codecs != tt.codecs {
				t.Errorf("got status %d, video %v, codecs %s; want %d, %v, %s",
					ans.status, ans.video, codecs, tt.status, tt.video, tt.codecs)
			}
		})
	}
}
