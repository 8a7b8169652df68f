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

// packet is one RTP packet on its way upstream, as the upstream side takes it off the queue.
// Its buffer is reused: the forward path copies into it instead of allocating.
type packet struct {
	track int
	rtp.Packet
	buf []byte
	// at is the wall-clock time the packet's timestamp stands for (see trackState.wallTime),
	// for live packets and those replayed from the GOP cache alike.
	at time.Time
}

// slot is one queued packet: the header fields that survive forwarding and where its payload
// lies in the forwarder's byte arena. Keeping payloads back to back in one arena, rather than a
// buffer per slot, makes the queue's memory follow what is queued, not its slot count times the
// largest packet ever seen.
type slot struct {
	off, size int32
	seq       uint16
	ts, ssrc  uint32
	track     uint8
	pt        uint8
	marker    bool
	wrapStart bool // the arena's write position wrapped to 0 for this packet
}

const (
	// minArena is the arena a forwarder starts with: a few packets of a frame in flight.
	minArena = 16 << 10
	// packetBytes is what QueuePackets is taken to mean in bytes: a full-size RTP packet each.
	packetBytes = 1500
	// maxRTPPacket is the largest payload TCP interleaving can carry; the arena bound is never
	// below it, so that any single packet fits an empty queue.
	maxRTPPacket = 64 << 10
)

// trackState is the forwarder's per-track rewriting state.
type trackState struct {
	clockRate int
	seq       uint16 // next outgoing sequence number
	tsOffset  uint32 // added to the camera's timestamps
	lastTS    uint32 // last outgoing timestamp
	step      uint32 // the last step between two different outgoing timestamps: a frame's length
	rebase    bool   // the next packet starts a new camera session
	started   bool

	// The track's outgoing timestamp wallTS stands for wall-clock time wallAt, and the RTP
	// clock advances the mapping from there. It is fixed at the first packet's arrival and
	// then moved only by the camera's own sender reports, never by arrival jitter; since the
	// outgoing timestamps continue across camera restarts, so does the mapping. Upstream
	// sender reports and RTMP times are made from it.
	wallTS uint32
	wallAt time.Time
	mapped bool // wallTS and wallAt are set
	// reported: the mapping is from this camera session's sender reports; pending holds one
	// that came before the session's clock offset was known.
	reported, pending bool
	pendingNTP        time.Time
	pendingTS         uint32
}

// earlyReport is a camera's sender report that came before the packets it tells the timing
// of: before the track's first packet of its camera session, or from a session still in
// standby (a substream switch). Servers send the first report as they send the first packet,
// and it can overtake it (gortsplib's, mediamtx's, write it from another goroutine); the next
// one may be 10 s away, so it is kept for the packets rather than dropped.
type earlyReport struct {
	src     uint64 // the camera session it came from
	ntp     time.Time
	rtpTime uint32 // the camera's own timestamp, not yet rebased
	ok      bool
}

// maxEarlyTracks bounds the early reports kept: a camera's tracks beyond it, never taken, are
// not worth memory a peer could make grow.
const maxEarlyTracks = 8

// wallTime is the wall-clock time the outgoing timestamp ts stands for. It holds within 2^31
// ticks of wallTS, which enqueueLocked keeps near.
func (t *trackState) wallTime(ts uint32) time.Time {
	if t.clockRate <= 0 {
		return t.wallAt
	}
	d := int64(int32(ts - t.wallTS))
	return t.wallAt.Add(time.Duration(d * int64(time.Second) / int64(t.clockRate)))
}

// mapWallClock fixes the track's mapping at its first packet, queued or only cached (a shut
// gate), and keeps its reference near the outgoing timestamp out.
func (t *trackState) mapWallClock(out uint32, now time.Time) {
	if !t.mapped {
		t.wallTS, t.wallAt, t.mapped = out, now, true
	} else if d := int64(int32(out - t.wallTS)); t.clockRate > 0 && (d > 1<<30 || d < -1<<30) {
		// Move the reference by whole seconds, which is exact, to stay within wallTime's range.
		k := d / int64(t.clockRate)
		t.wallTS += uint32(k * int64(t.clockRate))
		t.wallAt = t.wallAt.Add(time.Duration(k) * time.Second)
	}
}

// sent notes the outgoing timestamp of a packet queued or replayed.
func (t *trackState) sent(out uint32) {
	if d := out - t.lastTS; t.started && d != 0 && d < uint32(t.clockRate) {
		t.step = d
	}
	t.lastTS, t.started = out, true
}

// maxClockStep is the largest disagreement between a camera's sender report and the mapping so
// far that is taken as the camera's word on its tracks' timing. A larger one is its clock
// being set (NTP on the camera, a reboot to 1970): the mapping then stays continuous and
// the camera's clock is taken from there.
const maxClockStep = 5 * time.Second

// reportWait is how long a camera session's audio waits for the camera's sender reports. Its
// first packet's arrival is only a guess at its timing (cameras and their servers interleave
// audio hundreds of milliseconds ahead of video), and a receiver lines the tracks up from the
// first report it gets, so audio sent on the guess steps later, when the camera's word comes.
// Cameras report every 5 s or so (RFC 3550's minimum interval; gortsplib's servers every 10 s);
// one that sends nothing within reportWait is not waited for again.
const reportWait = 12 * time.Second

// forwarder is the bounded queue between the camera side (push) and the upstream side (pop).
// It gates the stream so that what leaves it after any restart of either side begins with a
// keyframe preceded by its parameter sets, rewrites sequence numbers and timestamps in place so
// that the upstream session sees one continuous stream across camera restarts, and drops video
// until the next keyframe rather than grow when the upstream side falls behind.
type forwarder struct {
	mu      sync.Mutex
	ring    []slot
	head, n int
	notify  chan struct{}

	// data is a circular byte arena for the queued payloads, grown on demand up to maxData.
	// Live payloads lie in [r, w) or, when wrapped, in [r, end of the pre-wrap packets) and
	// [0, w), r being the head slot's offset.
	data    []byte
	maxData int
	w       int
	wrapped bool

	video      videoCodec // codec of track 0, the video track
	params     [3][]byte  // VPS, SPS, PPS as last seen (SDP or in-band)
	paramsGen  uint64     // bumped whenever a parameter set changes
	resync     bool       // drop until a keyframe
	tracks     []trackState
	lastOutAt  time.Time // when the last packet was queued
	rebaseFrom time.Time // lastOutAt when the camera session changed
	// clockOffset is our wall clock minus the camera's sender-report clock, learnt from the
	// first sender report of the camera session (clockKnown) so that the mapping of the
	// reporting track stays continuous; one value for all tracks, so the camera's statement
	// of how its tracks line up passes unchanged.
	clockOffset time.Duration
	clockKnown  bool
	sessionAt   time.Time     // the camera session's first packet
	reportWait  time.Duration // reportWait; tests of other things set 0
	noReports   bool          // a camera session sent no video sender report within reportWait
	early       [maxEarlyTracks]earlyReport

	framesIn, framesOut, dropped atomic.Uint64
	bytesIn                      atomic.Uint64
	// bytesOut counts the payload bytes handed to the upstream session: what the uplink
	// carried, for the quality governor (quality.go).
	bytesOut atomic.Uint64

	// source is the camera session whose packets are taken (pushFrom); 0 until one is adopted.
	// A switch to the substream adopts the new session at its first keyframe, and packets the
	// old one still delivers are then left out (quality_switch.go).
	source uint64

	// cache, when set, keeps the stream since the last keyframe so that a new upstream
	// session starts at once (gopcache.go); gopBytes counts the current GOP for its rank.
	cache    *gopCache
	gopBytes int64
	// parked: no upstream session is wanted (a shut gate, gate.go), so packets go only to the
	// cache; restartSink unparks.
	parked bool
}

func newForwarder(capacity int) *forwarder {
	return &forwarder{
		ring:       make([]slot, capacity),
		maxData:    max(capacity*packetBytes, maxRTPPacket),
		notify:     make(chan struct{}, 1),
		resync:     true,
		reportWait: reportWait,
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
	f.clockKnown = false // a restarted camera may have set its clock
	f.sessionAt = time.Time{}
	for i := range f.tracks {
		f.tracks[i].reported, f.tracks[i].pending = false, false
	}
	for i := range f.early {
		if f.early[i].src != f.source {
			f.early[i] = earlyReport{} // an earlier session's, or a standby one's never adopted
		}
	}
	f.rebaseFrom = f.lastOutAt
	if !f.parked {
		f.flushLocked() // parked, what is queued is the old session's, for it to send (holdForRepublish)
	}
	f.resync = true
	if f.cache != nil {
		// A new camera session: what was cached belongs to the old one.
		f.cache.reset()
		f.cache.replaying = false
	}
}

// restartSink prepares the stream for a new upstream session and forgets what was queued. With a
// fresh GOP cached, the session gets that at once, keyframe and parameter sets first, and the
// live stream right after it; otherwise the stream is gated until the next keyframe. A session
// that opens a window with a pre-roll (from set) starts at the newest cached keyframe at or
// before from.
func (f *forwarder) restartSink(now, from time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushLocked()
	f.parked = false
	f.resync = f.cache == nil || !f.cache.beginReplay(now, from)
}

// park stops or resumes queueing for the upstream side, which is not wanted meanwhile.
func (f *forwarder) park(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parked = on
	if on {
		f.flushLocked()
	}
}

// cameraGone forgets the GOP cache when the camera session ends, giving its memory back to
// the budget: a stale GOP is never replayed.
func (f *forwarder) cameraGone() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache != nil {
		if f.cache.replaying {
			f.resync = true
		}
		f.cache.drop()
	}
}

// closeCache leaves the cache budget for good.
func (f *forwarder) closeCache() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache != nil {
		f.cache.close()
	}
}

// cacheStats is what the GOP cache holds now.
func (f *forwarder) cacheStats() CacheStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache == nil {
		return CacheStats{}
	}
	return f.cache.stats()
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
		if p.track == 0 && p.marker {
			f.dropped.Add(1)
		}
	}
	f.head, f.n = 0, 0
	f.w, f.wrapped = 0, false
}

// push queues one packet from the camera. It never blocks and never allocates once the ring's
// buffers have grown to the stream's packet size.
func (f *forwarder) push(track int, pkt *rtp.Packet, now time.Time) {
	f.pushFrom(0, track, pkt, now)
}

// pushFrom is push for the camera session src; a packet of a session other than the adopted
// one is left out. src 0 is whichever session is adopted.
func (f *forwarder) pushFrom(src uint64, track int, pkt *rtp.Packet, now time.Time) {
	f.bytesIn.Add(uint64(len(pkt.Payload)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if track >= len(f.tracks) || (src != 0 && src != f.source) {
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
			// The session before's last frame lasts a frame however soon this one came (a
			// switch opens the new session beside the old one), so that time never stands still.
			gap := max(uint32(now.Sub(f.rebaseFrom).Seconds()*float64(ts.clockRate)), ts.step)
			ts.tsOffset = ts.lastTS + gap - pkt.Timestamp
		}
	}
	if f.sessionAt.IsZero() {
		f.sessionAt = now
	}
	if track < len(f.early) && f.early[track].ok && f.early[track].src == f.source {
		e := f.early[track]
		f.early[track] = earlyReport{}
		if isVideo {
			ts.mapWallClock(pkt.Timestamp+ts.tsOffset, now) // video's report is read against it
		}
		f.senderReportLocked(track, e.ntp, e.rtpTime)
	}
	if !isVideo && !ts.reported && f.awaitReports(now) {
		return
	}
	ts.mapWallClock(pkt.Timestamp+ts.tsOffset, now)
	if f.cache != nil && f.cachePacket(track, pkt, keyframe, now) {
		return // a replay is under way: the cache is the queue until the upstream side catches up
	}
	if f.parked {
		return
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
	if f.n == len(f.ring) || !f.enqueueLocked(track, &pkt.Header, pkt.Payload, now) {
		// The upstream side is too slow: drop what is queued and wait for the next keyframe,
		// rather than send a broken picture or grow.
		f.flushLocked()
		f.resync = true
		if pkt.Marker && isVideo {
			f.dropped.Add(1)
		}
	}
}

// cachePacket keeps pkt in the GOP cache, starting the cache afresh at each keyframe, and
// reports whether a replay is under way, in which case the packet is not queued.
func (f *forwarder) cachePacket(track int, pkt *rtp.Packet, keyframe bool, now time.Time) bool {
	c := f.cache
	ts := &f.tracks[track]
	out := pkt.Timestamp + ts.tsOffset
	f.gopBytes += int64(len(pkt.Payload))
	if keyframe && (!c.active || out != c.keyTS) {
		c.rank.Store(f.gopBytes - int64(len(pkt.Payload)))
		f.gopBytes = int64(len(pkt.Payload))
		needed := 3
		if f.video == codecH264 {
			needed = 2
		}
		c.start(&pkt.Header, out, f.params[3-needed:], now)
	}
	replaying := c.replaying
	c.add(track, &pkt.Header, out, pkt.Marker, pkt.Payload, now)
	if n := c.takeSkipped(); n > 0 {
		f.dropped.Add(n)
	}
	if !replaying {
		return false
	}
	if !c.replaying {
		// The cache could not keep up with a slow upstream side: gate as on an overflow.
		f.resync = true
		return false
	}
	ts.sent(out)
	f.lastOutAt = now
	return true
}

// enqueueLocked queues a packet and reports whether there was room for it.
func (f *forwarder) enqueueLocked(track int, h *rtp.Header, payload []byte, now time.Time) bool {
	off, wrapStart, ok := f.allocLocked(len(payload))
	if !ok {
		return false
	}
	copy(f.data[off:], payload)
	ts := &f.tracks[track]
	f.ring[(f.head+f.n)%len(f.ring)] = slot{
		off:       int32(off),
		size:      int32(len(payload)),
		seq:       ts.seq,
		ts:        h.Timestamp + ts.tsOffset,
		ssrc:      h.SSRC,
		track:     uint8(track),
		pt:        h.PayloadType,
		marker:    h.Marker,
		wrapStart: wrapStart,
	}
	ts.seq++
	ts.sent(h.Timestamp + ts.tsOffset)
	f.lastOutAt = now
	f.n++
	return true
}

// awaitReports says whether audio still waits for the camera's sender reports.
func (f *forwarder) awaitReports(now time.Time) bool {
	if f.noReports {
		return false
	}
	if now.Sub(f.sessionAt) < f.reportWait {
		return true
	}
	f.noReports = !f.clockKnown
	return false
}

// senderReport takes a camera's RTCP sender report for track: its RTP time rtpTime was at ntp
// on the camera's clock. The camera session's offset from our clock is learnt from the video
// track's first report, so that video's mapping stays continuous; the other tracks then take
// the camera's statement of their timing on our clock.
func (f *forwarder) senderReport(track int, ntp time.Time, rtpTime uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.senderReportLocked(track, ntp, rtpTime)
}

// keepEarlyLocked keeps a report of session src until the track's first packet of it.
func (f *forwarder) keepEarlyLocked(src uint64, track int, ntp time.Time, rtpTime uint32) {
	if track < len(f.early) {
		f.early[track] = earlyReport{src: src, ntp: ntp, rtpTime: rtpTime, ok: true}
	}
}

func (f *forwarder) senderReportLocked(track int, ntp time.Time, rtpTime uint32) {
	if track >= len(f.tracks) {
		return
	}
	if f.tracks[track].rebase {
		// No packet of this camera session yet, so no offset to its timestamps: the report
		// waits for the first one.
		f.keepEarlyLocked(f.source, track, ntp, rtpTime)
		return
	}
	t := &f.tracks[track]
	out := rtpTime + t.tsOffset
	if track == 0 {
		if !t.mapped {
			return
		}
		offset := t.wallTime(out).Sub(ntp)
		if d := offset - f.clockOffset; !f.clockKnown || d > maxClockStep || d < -maxClockStep {
			f.clockOffset, f.clockKnown = offset, true
		}
		for i := range f.tracks[1:] {
			if a := &f.tracks[1+i]; a.pending {
				a.pending = false
				a.wallTS, a.wallAt, a.mapped, a.reported = a.pendingTS, a.pendingNTP.Add(f.clockOffset), true, true
			}
		}
	} else if !f.clockKnown {
		t.pendingTS, t.pendingNTP, t.pending = out, ntp, true
		return
	}
	t.wallTS, t.wallAt, t.mapped, t.reported = out, ntp.Add(f.clockOffset), true, true
}

// wake tells the upstream side that packets were queued. The camera side calls it once per
// batch of pushes, so that a batch costs the upstream side one wake-up.
func (f *forwarder) wake() {
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// allocLocked finds room for size bytes in the arena, growing it within its bound, and returns
// the offset. The caller must queue a slot for it.
func (f *forwarder) allocLocked(size int) (off int, wrapStart, ok bool) {
	for {
		switch {
		case f.n == 0:
			f.w, f.wrapped = 0, false
			if size <= len(f.data) {
				f.w = size
				return 0, false, true
			}
		case !f.wrapped:
			if f.w+size <= len(f.data) {
				off = f.w
				f.w += size
				return off, false, true
			}
			if size <= int(f.ring[f.head].off) {
				f.w, f.wrapped = size, true
				return 0, true, true
			}
		default:
			if f.w+size <= int(f.ring[f.head].off) {
				off = f.w
				f.w += size
				return off, false, true
			}
		}
		if !f.growLocked(size) {
			return 0, false, false
		}
	}
}

// growLocked doubles the arena, within maxData, until the queued payloads and size more fit,
// and moves the queued payloads to its start.
func (f *forwarder) growLocked(size int) bool {
	used := 0
	for i := 0; i < f.n; i++ {
		used += int(f.ring[(f.head+i)%len(f.ring)].size)
	}
	if len(f.data) >= f.maxData || used+size > f.maxData {
		return false
	}
	n := max(2*len(f.data), minArena)
	for n < used+size {
		n *= 2
	}
	data := make([]byte, min(n, f.maxData))
	w := 0
	for i := 0; i < f.n; i++ {
		s := &f.ring[(f.head+i)%len(f.ring)]
		copy(data[w:], f.data[s.off:s.off+s.size])
		s.off, s.wrapStart = int32(w), false
		w += int(s.size)
	}
	f.data, f.w, f.wrapped = data, w, false
	return true
}

// pop copies the oldest queued packet into dst and reports whether there was one.
func (f *forwarder) pop(dst *packet) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cache; c != nil && c.replaying {
		if c.next(dst) {
			ts := &f.tracks[dst.track]
			dst.SequenceNumber = ts.seq
			ts.seq++
			dst.at = ts.wallTime(dst.Timestamp)
			return true
		}
	}
	if f.n == 0 {
		return false
	}
	s := &f.ring[f.head]
	dst.set(int(s.track), s.marker, s.pt, s.seq, s.ts, s.ssrc, f.data[s.off:s.off+s.size])
	dst.at = f.tracks[s.track].wallTime(s.ts)
	f.head = (f.head + 1) % len(f.ring)
	f.n--
	switch {
	case f.n == 0:
		f.head, f.w, f.wrapped = 0, 0, false
	case f.ring[f.head].wrapStart:
		f.wrapped = false // the reader has wrapped too
	}
	return true
}

// set makes p a packet of track with these header fields and a copy of payload, reusing p's
// buffers.
func (p *packet) set(track int, marker bool, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) {
	p.track = track
	p.Header = rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           ssrc,
		CSRC:           p.CSRC[:0],
		Extensions:     p.Extensions[:0],
	}
	p.buf = append(p.buf[:0], payload...)
	p.Payload = p.buf
	p.PaddingSize = 0
}
