package rtsp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// scriptedPlayer is a player whose camera says script, whatever it is asked.
func scriptedPlayer(script string) *player {
	conn := scriptConn{strings.NewReader(script)}
	rd := &connReader{conn: conn, block: true}
	u, _ := base.ParseURL("rtsp://127.0.0.1:554/live")
	return &player{rtspConn: rtspConn{
		conn: conn, rd: rd, br: bufio.NewReaderSize(rd, 4096), w: deadlineWriter{conn, time.Second},
		url: u, user: "user", pass: "pass", hasUser: true, timeout: time.Second, keepAlive: time.Second,
	}}
}

const sdpH264 = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"

func answer(cseq int, extra string, body string) string {
	s := "RTSP/1.0 200 OK\r\nCSeq: " + strconv.Itoa(cseq) + "\r\n" + extra
	if body != "" {
		s += "Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	return s + "\r\n" + body
}

// A camera session is OPTIONS, DESCRIBE, one SETUP per relayed track on the interleaved
// channels the camera confirms, and PLAY; keep-alives use GET_PARAMETER when offered.
func TestPlayerHandshake(t *testing.T) {
	script := answer(1, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n", "") +
		answer(2, "Content-Base: rtsp://127.0.0.1:554/live/\r\n", sdpH264) +
		answer(3, "Session: abc;timeout=20\r\nTransport: RTP/AVP/TCP;unicast;interleaved=6-7\r\n", "") +
		answer(4, "", "")
	p := scriptedPlayer(script)
	if err := p.handshake(true); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if !p.getParameter {
		t.Error("GET_PARAMETER offered but not chosen for keep-alives")
	}
	if p.session != "abc" || p.keepAlive != 10*time.Second {
		t.Errorf("session %q, keep-alive %s; want abc, 10s", p.session, p.keepAlive)
	}
	if p.chans[6] != 0 || p.chans[7] != 1 || p.chans[0] != -1 || p.tracks[0].rtcpChannel != 7 {
		t.Errorf("channels 6/7/0 map to %d/%d/%d, RTCP channel %d; want 0/1/-1, 7",
			p.chans[6], p.chans[7], p.chans[0], p.tracks[0].rtcpChannel)
	}
	if got := p.desc.BaseURL.String(); got != "rtsp://127.0.0.1:554/live/" {
		t.Errorf("base URL %s", got)
	}
}

// Redirects are followed on the camera's own host only: its credentials go nowhere else.
func TestPlayerRedirects(t *testing.T) {
	tests := []struct {
		name, location, wantErr string
	}{
		{"same host", "rtsp://127.0.0.1:554/other", ""},
		{"another host", "rtsp://203.0.113.9:554/live", "another host"},
		{"another port", "rtsp://127.0.0.1:8554/live", "another host"},
		{"not rtsp", "http://127.0.0.1:554/live", "invalid location"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script := "RTSP/1.0 302 Moved\r\nCSeq: 1\r\nLocation: " + tc.location + "\r\n\r\n" +
				answer(2, "", sdpH264)
			p := scriptedPlayer(script)
			err := p.describe()
			if tc.wantErr == "" {
				if err != nil || p.desc.BaseURL.String() != tc.location {
					t.Fatalf("describe: %v, base %v; want the redirect followed", err, p.desc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("describe: %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	described, _ := base.ParseURL("rtsp://10.0.0.5:554/Streaming/Channels/101")
	tests := []struct {
		name, control, contentBase, want string
	}{
		{"request URL", "", "", "rtsp://10.0.0.5:554/Streaming/Channels/101"},
		{"content base", "", "rtsp://10.0.0.5:554/Streaming/Channels/101/", "rtsp://10.0.0.5:554/Streaming/Channels/101/"},
		{"relative content base", "", "/live/", "rtsp://10.0.0.5:554/live/"},
		{"session control wins", "rtsp://10.0.0.5:554/x/", "rtsp://10.0.0.5:554/y/", "rtsp://10.0.0.5:554/x/"},
		{"control * is no control", "*", "rtsp://10.0.0.5:554/y/", "rtsp://10.0.0.5:554/y/"},
		{"another host stays the camera's", "", "rtsp://198.51.100.1/z/", "rtsp://10.0.0.5:554/z/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			attr := func(k string) (string, bool) { return tc.control, k == "control" && tc.control != "" }
			var cb base.HeaderValue
			if tc.contentBase != "" {
				cb = base.HeaderValue{tc.contentBase}
			}
			u, err := baseURL(described, attr, cb)
			if err != nil || u.String() != tc.want {
				t.Errorf("baseURL = %v, %v; want %s", u, err, tc.want)
			}
		})
	}
}

// Receiver reports tell the camera what arrived of each track: its SSRC, the highest sequence
// number with wraps, losses, and the last sender report heard and how long ago.
func TestPlayerReceiverReport(t *testing.T) {
	p := scriptedPlayer("")
	p.ssrc = 0x1111
	p.tracks = []playTrack{{rtcpChannel: 3}}
	tr := &p.tracks[0]
	for _, seq := range []uint16{65530, 65531, 65533, 65534, 65535, 0, 1, 2} { // 65532 lost
		tr.count(0xcafe, seq)
	}
	t0 := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	sr := rtcp.SenderReport{SSRC: 0xcafe, NTPTime: 0x0123456789abcdef}
	b, _ := sr.Marshal()
	tr.takeRTCP(b, t0)
	var out bytes.Buffer
	p.w = deadlineWriter{writerConn{w: &out}, time.Second}
	p.receiverReports(t0.Add(500 * time.Millisecond))
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	frame := out.Bytes()
	if len(frame) < 4 || frame[0] != '$' || frame[1] != 3 || int(binary.BigEndian.Uint16(frame[2:])) != len(frame)-4 {
		t.Fatalf("not one interleaved frame on channel 3: % x", frame)
	}
	pkts, err := rtcp.Unmarshal(frame[4:])
	if err != nil || len(pkts) != 1 {
		t.Fatalf("RTCP %v, %v", pkts, err)
	}
	rr, ok := pkts[0].(*rtcp.ReceiverReport)
	if !ok || len(rr.Reports) != 1 {
		t.Fatalf("got %#v, want one receiver report with one block", pkts[0])
	}
	got := rr.Reports[0]
	want := rtcp.ReceptionReport{SSRC: 0xcafe, FractionLost: 256 / 9, TotalLost: 1, LastSequenceNumber: 1<<16 + 2,
		LastSenderReport: 0x456789ab, Delay: 65536 / 2}
	if rr.SSRC != 0x1111 || got != want {
		t.Errorf("report from %#x: %+v, want from 0x1111: %+v", rr.SSRC, got, want)
	}
}

// writerConn is a connection that only writes, into w.
type writerConn struct {
	scriptConn
	w *bytes.Buffer
}

func (c writerConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Whatever a camera answers, the handshake and the session's reader end with an error or
// success, never a panic or a hang.
func FuzzPlayerRead(f *testing.F) {
	ok := answer(1, "Public: GET_PARAMETER\r\n", "") + answer(2, "", sdpH264) +
		answer(3, "Session: s\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n", "") + answer(4, "", "")
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Marker: true},
		Payload: []byte{0x65, 1, 2}}).Marshal()
	frame := append([]byte{'$', 0, 0, byte(len(pkt))}, pkt...)
	f.Add([]byte(ok + string(frame) + "$\x01\x00\x08\x80\xc8\x00\x01abcd" +
		"RTSP/1.0 454 Session Not Found\r\nCSeq: 5\r\n\r\n"))
	f.Add([]byte(ok + "$\x00\xff\xff" + strings.Repeat("x", 100)))
	f.Add([]byte("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n\r\n"))
	f.Add([]byte(answer(1, "", "") + "RTSP/1.0 301 Moved\r\nCSeq: 2\r\nLocation: rtsp://127.0.0.1:554/x\r\n\r\n" +
		answer(3, "", "v=0\r\nm=video")))
	f.Add([]byte(ok + "ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := scriptedPlayer(string(data))
		if err := p.handshake(true); err != nil {
			return
		}
		// Any error is fine: the fuzzer looks for panics and hangs.
		_ = p.play(context.Background(), nil, func(int, *rtp.Packet, time.Time) {}, func(time.Time) {})
	})
}

// repeatReader returns frame over and over, as a camera that never stops sending.
type repeatReader struct {
	frame []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.frame[r.off:])
		n += c
		r.off = (r.off + c) % len(r.frame)
	}
	return n, nil
}

// The camera side reads an interleaved frame, parses its RTP header where it lies and queues it,
// without allocating.
func BenchmarkPlayerRead(b *testing.B) {
	payload := make([]byte, 1400)
	payload[0] = 0x65 // an IDR slice: the gate opens and every packet is queued
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, Marker: true}, Payload: payload}).Marshal()
	frame := append([]byte{'$', 0, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
	p := scriptedPlayer("")
	p.br = bufio.NewReaderSize(&repeatReader{frame: frame}, playBuffer)
	p.tracks = make([]playTrack, 1)
	for i := range p.chans {
		p.chans[i] = -1
	}
	p.chans[0], p.chans[1] = 0, 1
	f := newForwarder(256)
	f.setTracks(codecH264, []int{90000}, [3][]byte{})
	var out packet
	onPacket := func(track int, pkt *rtp.Packet, now time.Time) { f.push(track, pkt, now) }
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := p.readOne(now, onPacket); err != nil {
			b.Fatal(err)
		}
		f.pop(&out)
	}
}
