package rtsp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/camgate/camgate/internal/sim"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// trackReport is what a recording server learnt of one track's timing from the start.
type trackReport struct {
	packets  int       // RTP packets so far
	firstTS  uint32    // the first RTP packet's timestamp
	firstAt  time.Time // its arrival
	srBefore int       // RTP packets that had arrived when the first sender report did; -1 none yet
	sr       rtcp.SenderReport
}

// recordServer is a raw RTSP server taking one publisher over TCP interleaving (RFC 2326 §10.12)
// and noting, per track, when its first RTCP sender report (RFC 3550 §6.4.1) came.
type recordServer struct {
	ln net.Listener
	mu sync.Mutex
	tr map[int]*trackReport // by RTP channel / 2
}

func startRecordServer(t *testing.T) *recordServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &recordServer{ln: ln, tr: map[int]*trackReport{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = s.serve(c) // ends when the relay hangs up; what arrived is the test's
	}()
	return s
}

func (s *recordServer) serve(c net.Conn) error {
	r := bufio.NewReader(c)
	for {
		b, err := r.Peek(1)
		if err != nil {
			return err
		}
		if b[0] == base.InterleavedFrameMagicByte {
			var fr base.InterleavedFrame
			if err := fr.Unmarshal(r); err != nil {
				return err
			}
			s.frame(fr.Channel, fr.Payload)
			continue
		}
		method, head, err := readRTSPRequest(r)
		if err != nil {
			return err
		}
		extra := ""
		switch method {
		case "SETUP":
			extra = "Transport: " + head["transport"] + "\r\nSession: 12345678;timeout=60\r\n"
		case "RECORD":
			extra = "Session: 12345678\r\n"
		case "OPTIONS":
			extra = "Public: ANNOUNCE, SETUP, RECORD, OPTIONS, TEARDOWN\r\n"
		}
		if _, err := fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\n%s\r\n", head["cseq"], extra); err != nil {
			return err
		}
	}
}

// readRTSPRequest reads one request, its body included, and returns its method and its
// headers by lower-case name.
func readRTSPRequest(r *bufio.Reader) (string, map[string]string, error) {
	head := map[string]string{}
	method := ""
	for first := true; ; first = false {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if first {
			method, _, _ = strings.Cut(line, " ")
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			head[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	if n, _ := strconv.Atoi(head["content-length"]); n > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return "", nil, err
		}
	}
	return method, head, nil
}

func (s *recordServer) frame(channel int, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tr[channel/2]
	if t == nil {
		t = &trackReport{srBefore: -1}
		s.tr[channel/2] = t
	}
	if channel%2 == 0 {
		var pkt rtp.Packet
		if pkt.Unmarshal(payload) != nil {
			return
		}
		if t.packets == 0 {
			t.firstTS, t.firstAt = pkt.Timestamp, time.Now()
		}
		t.packets++
		return
	}
	pkts, err := rtcp.Unmarshal(payload)
	if err != nil || t.srBefore >= 0 {
		return
	}
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			t.srBefore, t.sr = t.packets, *sr
			return
		}
	}
}

func (s *recordServer) tracks() map[int]trackReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]trackReport{}
	for k, v := range s.tr {
		out[k] = *v
	}
	return out
}

// Each track's first sender report comes with its first RTP packet, not a report period
// (5 s) later: a short session (a motion window, an on_demand start, the start after an
// outage) is placed in wall-clock time from its first frame. The report states the first
// packet's RTP time at the wall-clock time the packet stands for, which on the loopback is
// within moments of its arrival.
func TestSenderReportComesWithEachTracksFirstPacket(t *testing.T) {
	cam, err := sim.NewCamera(sim.CameraConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cam.Run(ctx) //nolint:errcheck // ends with ctx
	srv := startRecordServer(t)
	r := NewRelay(RelayConfig{
		Source: cam.URL(), Transport: "tcp", Audio: true, Publish: "rtsp://" + srv.ln.Addr().String() + "/cam",
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx) //nolint:errcheck // a valid config: ends with ctx
	}()
	defer func() { cancel(); <-done }()
	// Audio waits for the camera's own sender reports (reportWait) before it is relayed.
	waitFor(t, reportWait+10*time.Second, "a few packets of video and audio", func() bool {
		tr := srv.tracks()
		return len(tr) == 2 && tr[0].packets > 2 && tr[1].packets > 2
	})
	for i, tr := range srv.tracks() {
		at := ntp.Decode(tr.sr.NTPTime)
		t.Logf("track %d: report after %d packets: RTP %d at %s; first packet RTP %d, arrived %s", i, tr.srBefore,
			tr.sr.RTPTime, at.Format(time.StampMicro), tr.firstTS, tr.firstAt.Format(time.StampMicro))
		if tr.srBefore < 0 || tr.srBefore > 1 {
			t.Errorf("track %d: first sender report after %d RTP packets, want it before the second", i, tr.srBefore)
			continue
		}
		if tr.sr.RTPTime != tr.firstTS {
			t.Errorf("track %d: report at RTP time %d, want the first packet's %d", i, tr.sr.RTPTime, tr.firstTS)
		}
		if d := tr.firstAt.Sub(at); d < -time.Second || d > 3*time.Second {
			t.Errorf("track %d: report says the first packet stands for %s, it arrived %s later", i, at, d)
		}
	}
}
