package rtsp

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// maxParamSetSize bounds what is remembered of one parameter set; real ones are tens of bytes.
const maxParamSetSize = 1024

// packet is one RTP packet on its way upstream. Its buffers are reused: the forward path
// copies into them instead of allocating.
type packet struct {
	track int
	rtp.Packet
	buf []byte
}

func (p *packet) set(track int, h *rtp.Header, payload []byte) {
	p.track = track
	p.Header = *h
	// Extensions and CSRCs belong to the camera's session and would alias its buffers.
	p.Header.Extension = false
	p.Header.Extensions = p.Header.Extensions[:0]
	p.Header.ExtensionProfile = 0
	p.Header.CSRC = p.Header.CSRC[:0]
	p.Header.Padding = false
	p.Header.PaddingSize = 0
	p.buf = append(p.buf[:0], payload...)
	p.Payload = p.buf
	p.PaddingSize = 0
}

// trackState is the forwarder's per-track rewriting state.
type trackState struct {
	clockRate int
	seq       uint16 // next outgoing sequence number
	tsOffset  uint32 // added to the camera's timestamps
	lastTS    uint32 // last outgoing timestamp
	rebase    bool   // the next packet starts a new camera session
	started   bool
}

// forwarder is the bounded queue between the camera side (push) and the upstream side (pop).
// It gates the stream so that what leaves it after any restart of either side begins with a
// keyframe preceded by its parameter sets, rewrites sequence numbers and timestamps in place so
// that the upstream session sees one continuous stream across camera restarts, and drops video
// until the next keyframe rather than grow when the upstream side falls behind.
type forwarder struct {
	mu      sync.Mutex
	ring    []packet
	head, n int
	notify  chan struct{}

	video      videoCodec // codec of track 0, the video track
	params     [3][]byte  // VPS, SPS, PPS as last seen (SDP or in-band)
	paramsGen  uint64     // bumped whenever a parameter set changes
	resync     bool       // drop until a keyframe
	tracks     []trackState
	lastOutAt  time.Time // when the last packet was queued
	rebaseFrom time.Time // lastOutAt when the camera session changed

	framesIn, framesOut, dropped atomic.Uint64
	bytesIn                      atomic.Uint64
}

func newForwarder(capacity int) *forwarder {
	return &forwarder{
		ring:   make([]packet, capacity),
		notify: make(chan struct{}, 1),
		resync: true,
	}
}

// setTracks declares the tracks of a new camera session: track 0 is video. Timestamps of the new
// session are rebased to continue the previous one, and the stream is gated again.
func (f *forwarder) setTracks(video videoCodec, clockRates []int, params [3][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.video = video
	for i, p := range params {
		f.setParamLocked(i, p)
	}
	if len(f.tracks) != len(clockRates) {
		f.tracks = make([]trackState, len(clockRates))
	}
	for i := range f.tracks {
		if f.tracks[i].clockRate != clockRates[i] {
			f.tracks[i] = trackState{clockRate: clockRates[i]}
		}
		f.tracks[i].rebase = true
	}
	f.rebaseFrom = f.lastOutAt
	f.flushLocked()
	f.resync = true
}

// restartSink gates the stream for a new upstream session and forgets what was queued.
func (f *forwarder) restartSink() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushLocked()
	f.resync = true
}

// paramSet returns a copy of a remembered parameter set (0 VPS, 1 SPS, 2 PPS) and the
// generation counter, for statistics.
func (f *forwarder) paramSet(i int) ([]byte, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.params[i]...), f.paramsGen
}

func (f *forwarder) setParamLocked(i int, p []byte) {
	if len(p) == 0 || len(p) > maxParamSetSize || bytes.Equal(f.params[i], p) {
		return
	}
	f.params[i] = append(f.params[i][:0], p...)
	f.paramsGen++
}

func (f *forwarder) flushLocked() {
	for i := 0; i < f.n; i++ {
		p := &f.ring[(f.head+i)%len(f.ring)]
		if p.track == 0 && p.Marker {
			f.dropped.Add(1)
		}
	}
	f.head, f.n = 0, 0
}

// push queues one packet from the camera. It never blocks and never allocates once the ring's
// buffers have grown to the stream's packet size.
func (f *forwarder) push(track int, pkt *rtp.Packet, now time.Time) {
	f.bytesIn.Add(uint64(len(pkt.Payload)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if track >= len(f.tracks) {
		return
	}
	isVideo := track == 0
	keyframe := false
	if isVideo {
		if pkt.Marker {
			f.framesIn.Add(1)
		}
		scanNALs(f.video, pkt.Payload, func(typ uint8, nal []byte) {
			if i := paramSetIndex(f.video, typ); i >= 0 && nal != nil {
				f.setParamLocked(i, nal)
			}
			if isKeyframeNAL(f.video, typ) {
				keyframe = true
			}
		})
	}
	ts := &f.tracks[track]
	if ts.rebase {
		ts.rebase = false
		if ts.started {
			gap := uint32(now.Sub(f.rebaseFrom).Seconds() * float64(ts.clockRate))
			ts.tsOffset = ts.lastTS + gap - pkt.Timestamp
		}
	}
	if f.resync {
		if !keyframe {
			if isVideo && pkt.Marker {
				f.dropped.Add(1)
			}
			return
		}
		needed := 3
		if f.video == codecH264 {
			needed = 2
		}
		if f.n+needed+1 > len(f.ring) {
			f.flushLocked()
		}
		for i := 3 - needed; i < 3; i++ {
			if len(f.params[i]) == 0 {
				continue // the camera must send it in-band with the keyframe
			}
			h := pkt.Header
			h.Marker = false
			f.enqueueLocked(track, &h, f.params[i], now)
		}
		f.resync = false
	}
	if f.n == len(f.ring) {
		// The upstream side is too slow: drop what is queued and wait for the next keyframe,
		// rather than send a broken picture or grow.
		f.flushLocked()
		f.resync = true
		if pkt.Marker && isVideo {
			f.dropped.Add(1)
		}
		return
	}
	f.enqueueLocked(track, &pkt.Header, pkt.Payload, now)
}

func (f *forwarder) enqueueLocked(track int, h *rtp.Header, payload []byte, now time.Time) {
	ts := &f.tracks[track]
	p := &f.ring[(f.head+f.n)%len(f.ring)]
	p.set(track, h, payload)
	p.SequenceNumber = ts.seq
	ts.seq++
	p.Timestamp = h.Timestamp + ts.tsOffset
	ts.lastTS = p.Timestamp
	ts.started = true
	f.lastOutAt = now
	f.n++
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// pop copies the oldest queued packet into dst and reports whether there was one.
func (f *forwarder) pop(dst *packet) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return false
	}
	src := &f.ring[f.head]
	dst.set(src.track, &src.Header, src.Payload)
	f.head = (f.head + 1) % len(f.ring)
	f.n--
	return true
}
