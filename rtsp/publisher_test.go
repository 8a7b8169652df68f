package rtsp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// scriptedServer answers a publisher's requests the way a strict RTSP server would, checking
// credentials with the given methods, and records what it was asked.
func scriptedServer(t *testing.T, methods []auth.VerifyMethod) (addr string, got chan []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = make(chan []string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			return
		}
		br := bufio.NewReader(conn)
		var seen []string
		defer func() { got <- seen }()
		const nonce = "0123456789abcdef"
		for {
			var req base.Request
			if err := req.Unmarshal(br); err != nil {
				return
			}
			res := base.Response{StatusCode: base.StatusOK, Header: base.Header{"CSeq": req.Header["CSeq"]}}
			if err := auth.Verify(&req, "user", "p@ss", methods, "camgate-test", nonce); err != nil {
				res.StatusCode = base.StatusUnauthorized
				res.Header["WWW-Authenticate"] = auth.GenerateWWWAuthenticate(methods, "camgate-test", nonce)
			} else {
				seen = append(seen, string(req.Method)+" "+req.URL.String()+" "+strings.Join(req.Header["Transport"], ""))
				if req.Method == base.Setup {
					res.Header["Session"] = base.HeaderValue{"abc;timeout=10"}
				}
			}
			b, _ := res.Marshal()
			if _, err := conn.Write(b); err != nil {
				return
			}
			if req.Method == base.Record && res.StatusCode == base.StatusOK {
				return
			}
		}
	}()
	return l.Addr().String(), got
}

func TestPublisherHandshake(t *testing.T) {
	tests := []struct {
		name    string
		methods []auth.VerifyMethod
	}{
		{"Basic on 401", []auth.VerifyMethod{auth.VerifyMethodBasic}},
		{"Digest MD5 on 401", []auth.VerifyMethod{auth.VerifyMethodDigestMD5}},
		{"Digest SHA-256 on 401", []auth.VerifyMethod{auth.VerifyMethodDigestSHA256}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := scriptedServer(t, tc.methods)
			u, _ := url.Parse("rtsp://user:p%40ss@" + addr + "/live/out")
			medias := []*description.Media{
				{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}},
				{Type: description.MediaTypeAudio, Formats: []format.Format{
					&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1},
				}},
			}
			p, err := dialPublisher(context.Background(), u, medias, 10*time.Second)
			if err != nil {
				t.Fatalf("dialPublisher: %v", err)
			}
			defer p.close()
			want := []string{
				"ANNOUNCE rtsp://" + addr + "/live/out ",
				"SETUP rtsp://" + addr + "/live/out/trackID=0 RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
				"SETUP rtsp://" + addr + "/live/out/trackID=1 RTP/AVP/TCP;unicast;interleaved=2-3;mode=record",
				"RECORD rtsp://" + addr + "/live/out ",
			}
			seen := <-got
			if strings.Join(seen, "\n") != strings.Join(want, "\n") {
				t.Errorf("server saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
			}
			if p.keepAlive != 5*time.Second {
				t.Errorf("keep-alive every %v, want 5s for a 10 s session timeout", p.keepAlive)
			}
		})
	}
}

func TestPublisherWithoutCredentialsReportsRefusal(t *testing.T) {
	addr, _ := scriptedServer(t, []auth.VerifyMethod{auth.VerifyMethodBasic})
	u, _ := url.Parse("rtsp://" + addr + "/live/out")
	medias := []*description.Media{{Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96}}}}
	_, err := dialPublisher(context.Background(), u, medias, 10*time.Second)
	if err == nil || err.Error() != "ANNOUNCE refused: 401 Unauthorized" {
		t.Errorf("error = %v, want ANNOUNCE refused: 401 Unauthorized", err)
	}
}

// BenchmarkPublisherWrite measures the upstream write path per packet: framing one RTP packet
// into the batch buffer and the batch's writes. It must not allocate.
func BenchmarkPublisherWrite(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, c) // a sink: it ends when the benchmark closes the client
		}
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	p := &publisher{
		rtspConn: rtspConn{conn: client, w: deadlineWriter{client, 10 * time.Second}},
		tracks:   []sentTrack{{clockRate: 90000}},
	}
	now := time.Now()
	var pkt packet
	pkt.Version = 2
	pkt.PayloadType = 96
	pkt.Payload = make([]byte, 1400)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt.Payload)))
	for i := 0; b.Loop(); i++ {
		pkt.SequenceNumber = uint16(i)
		if err := p.WritePacket(0, &pkt.Packet, now); err != nil {
			b.Fatal(err)
		}
		if i%8 == 7 {
			if err := p.flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A sender report ties each track's RTP clock to wall-clock time, on the track's RTCP channel:
// one goes ahead of a track's first packet, so receivers line tracks up from the start, and
// the periodic ones state the line through the last packet's timestamp and the wall-clock
// time the relay mapped it to.
func TestPublisherSenderReport(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	p := &publisher{
		rtspConn: rtspConn{conn: client, w: deadlineWriter{client, 10 * time.Second}},
		tracks:   []sentTrack{{clockRate: 90000}, {clockRate: 8000}},
	}
	t0 := time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)
	pkt := packet{}
	pkt.Header = rtp.Header{Version: 2, PayloadType: 8, SSRC: 0xabcd, Timestamp: 1000}
	pkt.Payload = make([]byte, 160)
	go func() {
		if err := p.WritePacket(1, &pkt.Packet, t0); err != nil {
			t.Error(err)
		}
		pkt.Timestamp += 160
		if err := p.WritePacket(1, &pkt.Packet, t0.Add(20*time.Millisecond)); err != nil {
			t.Error(err)
		}
		if err := p.senderReports(t0.Add(500 * time.Millisecond)); err != nil {
			t.Error(err)
		}
	}()
	br := bufio.NewReader(server)
	senderReport := func(what string) rtcp.SenderReport {
		var fr base.InterleavedFrame
		if err := fr.Unmarshal(br); err != nil || fr.Channel != 3 {
			t.Fatalf("%s: frame on channel %d (%v), want the audio RTCP channel 3", what, fr.Channel, err)
		}
		pkts, err := rtcp.Unmarshal(fr.Payload)
		if err != nil || len(pkts) != 1 {
			t.Fatalf("%s: RTCP %v, %v", what, pkts, err)
		}
		sr, ok := pkts[0].(*rtcp.SenderReport)
		if !ok {
			t.Fatalf("%s: got %T, want a sender report", what, pkts[0])
		}
		return *sr
	}
	rtpFrame := func(what string) {
		var fr base.InterleavedFrame
		if err := fr.Unmarshal(br); err != nil || fr.Channel != 2 {
			t.Fatalf("%s: frame on channel %d (%v), want the audio RTP channel 2", what, fr.Channel, err)
		}
	}
	cases := []struct {
		name string
		read func() rtcp.SenderReport
		want rtcp.SenderReport
	}{
		{"ahead of the first packet", func() rtcp.SenderReport {
			sr := senderReport("first")
			rtpFrame("first packet")
			rtpFrame("second packet")
			return sr
		}, rtcp.SenderReport{SSRC: 0xabcd, NTPTime: ntp.Encode(t0), RTPTime: 1000}},
		{"periodic", func() rtcp.SenderReport { return senderReport("periodic") },
			rtcp.SenderReport{SSRC: 0xabcd, NTPTime: ntp.Encode(t0.Add(500 * time.Millisecond)), RTPTime: 1000 + 4000,
				PacketCount: 2, OctetCount: 320}},
	}
	for _, tc := range cases {
		sr := tc.read()
		if sr.SSRC != tc.want.SSRC || sr.NTPTime != tc.want.NTPTime || sr.RTPTime != tc.want.RTPTime ||
			sr.PacketCount != tc.want.PacketCount || sr.OctetCount != tc.want.OctetCount {
			t.Errorf("%s: sender report %+v, want %+v", tc.name, sr, tc.want)
		}
	}
}

// scriptConn is a connection whose peer says data and then hangs up, and that swallows writes.
type scriptConn struct{ r io.Reader }

func (c scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c scriptConn) Close() error                     { return nil }
func (c scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c scriptConn) SetDeadline(time.Time) error      { return nil }
func (c scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c scriptConn) SetWriteDeadline(time.Time) error { return nil }

// Whatever a server answers, the handshake and the session's reader end with an error or
// success, never a panic or a hang.
func FuzzPublisherRead(f *testing.F) {
	f.Add([]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n" +
		"RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: x;timeout=1\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n"))
	f.Add([]byte("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", " +
		"qop=\"auth\"\r\n\r\n"))
	f.Add([]byte("$\x01\x00\x04abcdRTSP/1.0 454 Session Not Found\r\nCSeq: 9\r\n\r\n"))
	f.Add([]byte("SET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc$\x00\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		medias := []*description.Media{{Type: description.MediaTypeVideo,
			Formats: []format.Format{&format.H264{PayloadTyp: 96}}}}
		for _, read := range []func(*publisher) error{
			func(p *publisher) error { return p.handshake(medias) },
			func(p *publisher) error { return p.ReadLoop(nil) },
		} {
			conn := scriptConn{bytes.NewReader(data)}
			u, _ := base.ParseURL("rtsp://user:pass@127.0.0.1/live")
			p := &publisher{
				rtspConn: rtspConn{
					conn: conn, br: bufio.NewReader(conn), w: deadlineWriter{conn, time.Second}, url: u,
					user: "user", pass: "pass", hasUser: true, timeout: time.Second, keepAlive: time.Second,
				},
				tracks: make([]sentTrack, 1),
			}
			_ = read(p) // any error is fine: the fuzzer looks for panics and hangs
		}
	})
}
