package rtsp

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

const (
	// DefaultCameraCacheBytes bounds one camera's GOP cache (issue 15).
	DefaultCameraCacheBytes = 2 << 20
	// DefaultCacheBudgetBytes is the gateway-wide budget of all GOP caches (relay.cache_bytes).
	DefaultCacheBudgetBytes = 8 << 20

	// cacheChunk is the unit in which caches take memory from the budget. A payload never
	// spans two chunks, so a chunk must hold the largest packet TCP interleaving carries.
	cacheChunk      = 64 << 10
	cacheChunkShift = 16
	// maxCacheEntries bounds the packets one cache remembers, whatever their size: a GOP of
	// tiny packets must not grow the entry table without bound. A 4 s GOP at 2 Mbit/s with
	// audio is about 900 packets.
	maxCacheEntries = 4096
	// cacheFresh is how recently the camera must have sent for its cache to be replayed: an
	// older GOP would start the upstream session in the past and then stall.
	cacheFresh = time.Second
)

// CacheBudget is the gateway-wide memory budget shared by the GOP caches of all relays of a
// process. Caches take memory in 64 KiB chunks from a pool it keeps, so that chunks move between
// cameras instead of becoming garbage, and a cache that reuses its chunks GOP after GOP never
// asks again. When the budget is spent and a cache needs one more chunk, the camera whose GOP
// is the largest loses its cache: it is the one that frees the most, and a camera without a
// cache only waits for its next keyframe, as it does without caching.
//
// Its lock guards only counters and the pool; nothing waits or does I/O under it.
type CacheBudget struct {
	mu        sync.Mutex
	limit     int // chunks
	perCamera int // chunks
	free      [][]byte
	allocated int // chunks in existence: pooled, held, or owed by an evicted cache
	members   map[*gopCache]struct{}
}

// NewCacheBudget returns a budget of the given bytes; 0 turns GOP caching off.
func NewCacheBudget(bytes int64) *CacheBudget {
	b := &CacheBudget{members: map[*gopCache]struct{}{}}
	b.SetLimit(bytes)
	return b
}

// SetLimit changes the budget. A smaller one takes the caches of the cameras with the largest
// GOPs until the others fit.
func (b *CacheBudget) SetLimit(bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = int(max(bytes, 0) / cacheChunk)
	b.perCamera = min(DefaultCameraCacheBytes/cacheChunk, b.limit)
	for b.heldLocked() > b.limit {
		v := b.victimLocked(nil, -1)
		if v == nil {
			break
		}
		b.evictLocked(v)
	}
	for b.allocated > b.limit && len(b.free) > 0 {
		freeChunk(b.free[len(b.free)-1]) // a system call, not a wait: SetLimit is rare
		b.free[len(b.free)-1] = nil
		b.free = b.free[:len(b.free)-1]
		b.allocated--
	}
}

// Usage reports the bytes held by caches and the budget's limit.
func (b *CacheBudget) Usage() (held, limit int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(b.heldLocked()) * cacheChunk, int64(b.limit) * cacheChunk
}

func (b *CacheBudget) heldLocked() int {
	n := 0
	for m := range b.members {
		n += m.held
	}
	return n
}

// victimLocked is the member other than c holding chunks whose GOP is larger than rank (any,
// when rank < 0), the largest first.
func (b *CacheBudget) victimLocked(c *gopCache, rank int64) *gopCache {
	var v *gopCache
	var vr int64
	for m := range b.members {
		if m == c || m.held == 0 {
			continue
		}
		if r := m.rank.Load(); r > rank && (v == nil || r > vr) {
			v, vr = m, r
		}
	}
	return v
}

// evictLocked takes m's chunks from it in the accounts; m hands them back when it next looks.
func (b *CacheBudget) evictLocked(m *gopCache) {
	m.held = 0
	m.evicted.Store(true)
}

// growResult says why a chunk was refused.
type growResult uint8

const (
	grown         growResult = iota
	refusedOff               // the budget is 0: caching is off
	refusedCamera            // the GOP is larger than one camera may cache
	refusedBudget            // the budget is spent and this camera's GOP is the largest
)

// grow gives c one more chunk, taking the cache of a camera with a larger GOP when the budget
// is spent and evict allows it. rank is the size of c's GOP in bytes. A cache growing its
// pre-roll beyond one GOP asks without evict: history never costs another camera its start.
func (b *CacheBudget) grow(c *gopCache, rank int64, evict bool) ([]byte, growResult) {
	b.mu.Lock()
	b.members[c] = struct{}{}
	c.rank.Store(rank)
	switch {
	case b.limit == 0:
		b.mu.Unlock()
		return nil, refusedOff
	case c.evicted.Load():
		b.mu.Unlock()
		return nil, refusedBudget
	case c.held >= b.perCamera:
		b.mu.Unlock()
		return nil, refusedCamera
	}
	if b.heldLocked() >= b.limit {
		var v *gopCache
		if evict {
			v = b.victimLocked(c, rank)
		}
		if v == nil {
			b.mu.Unlock()
			return nil, refusedBudget
		}
		b.evictLocked(v)
	}
	c.held++
	if n := len(b.free); n > 0 {
		chunk := b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
		b.mu.Unlock()
		return chunk, grown
	}
	b.allocated++
	b.mu.Unlock()
	chunk := newChunk()
	if chunk == nil {
		b.mu.Lock()
		b.allocated--
		c.held--
		b.mu.Unlock()
		return nil, refusedBudget
	}
	return chunk, grown
}

// release takes chunks back from c into the pool, or unmaps them while more exist than the
// budget allows (after an eviction whose chunks were owed, or a smaller limit). When c leaves
// and was the last member, the pool goes back to the system too: nothing caches any more.
func (b *CacheBudget) release(c *gopCache, chunks [][]byte, leave bool) {
	var unmap [][]byte
	b.mu.Lock()
	c.held = max(c.held-len(chunks), 0)
	if leave {
		c.held = 0
		delete(b.members, c)
	}
	for _, ch := range chunks {
		if b.allocated > b.limit {
			b.allocated--
			unmap = append(unmap, ch)
			continue
		}
		b.free = append(b.free, ch)
	}
	if leave && len(b.members) == 0 {
		unmap = append(unmap, b.free...)
		b.allocated -= len(b.free)
		clear(b.free)
		b.free = b.free[:0]
	}
	b.mu.Unlock()
	for _, ch := range unmap {
		freeChunk(ch)
	}
}

// cacheEntry is one cached packet: its outgoing header fields and where its payload lies. The
// wall-clock time a replayed packet stands for is the track's mapping of its timestamp (pop), so
// an entry carries no time of its own: 20 bytes, about 20 KiB for a 4 s GOP at 2 Mbit/s.
type cacheEntry struct {
	pos      int32 // chunk index << cacheChunkShift | offset
	size     int32
	ts, ssrc uint32
	track    uint8
	pt       uint8
	marker   bool
}

// gopCache keeps what a camera sent since its last keyframe, parameter sets first, in chunks
// from a CacheBudget; with a pre-roll (relay mode motion) it keeps whole GOPs back to the one
// that began at least preRoll ago, so that an upstream session can start that far in the past.
// The forwarder owns it and calls it under its lock; the budget reads only rank and evicted,
// and held under its own lock.
type gopCache struct {
	budget *CacheBudget

	held    int          // chunks the budget counts for this cache; guarded by budget.mu
	rank    atomic.Int64 // bytes of the camera's last complete GOP, or of the current one while larger
	evicted atomic.Bool  // the budget took this cache's chunks; they are to be handed back

	chunks  [][]byte
	cur, w  int // chunk being written and the write offset in it
	entries []cacheEntry
	active  bool // holds a GOP from its keyframe, nothing missing
	keyTS   uint32
	lastAt  time.Time // arrival of the last cached packet
	bytes   int
	frames  int
	filling int // bytes of the GOP being filled, the last of gops
	// gops marks where each cached GOP begins (its parameter sets), oldest first; the last is
	// the GOP being filled. preRoll is how far back the oldest must reach.
	gops    []gopMark
	preRoll time.Duration

	// replaying: an upstream session is being sent the cache; cursor is the next entry.
	// Packets arriving meanwhile are appended to the cache, which is the queue until the
	// upstream side catches up; GOPs are dropped from the front only behind the cursor.
	replaying bool
	cursor    int

	evictions, overflows uint64 // times the cache was lost to the budget, or to its own bound
	shrinks              uint64 // times the pre-roll lost its oldest GOP to a bound
	skipped              uint64 // video frames a replay skipped to make room, not yet counted as drops
}

// gopMark is where a cached GOP begins and when its keyframe arrived.
type gopMark struct {
	entry int
	at    time.Time
}

const (
	// maxPreRollGOPs bounds the GOPs a pre-roll keeps, whatever their length: a camera with a
	// keyframe every few frames must not grow the mark table without bound.
	maxPreRollGOPs = 256
	// preRollSlack is kept beyond the pre-roll, for the time from an alarm to the opening of
	// the gate (the event is stored on disk first), so that a window can start from
	// preRoll before the alarm itself.
	preRollSlack = time.Second
)

func newGOPCache(b *CacheBudget) *gopCache { return &gopCache{budget: b} }

// start begins a new GOP at a keyframe whose outgoing timestamp is ts: the parameter sets
// first, then (by add) the keyframe's packets. GOPs no longer needed for the pre-roll are
// dropped from the front; their chunks are kept for reuse, beyond one spare given back.
func (c *gopCache) start(h *rtp.Header, ts uint32, params [][]byte, now time.Time) {
	if c.evicted.Load() {
		if c.active {
			c.evictions++
		}
		c.handBack()
		c.reset()
		c.replaying = false
	}
	keep := c.cur + 2
	switch {
	case !c.active:
		c.reset()
	case c.preRoll <= 0:
		c.cutFront(c.cutPoint(len(c.entries)))
	default:
		cut := c.markAt(now.Add(-c.preRoll - preRollSlack))
		if len(c.gops) >= maxPreRollGOPs {
			cut = max(cut, c.gops[1].entry)
		}
		c.cutFront(c.cutPoint(cut))
	}
	if len(c.chunks) > keep {
		c.budget.release(c, c.chunks[keep:], false)
		clear(c.chunks[keep:])
		c.chunks = c.chunks[:keep]
	}
	c.active, c.keyTS = true, ts
	c.gops = append(c.gops, gopMark{entry: len(c.entries), at: now})
	c.filling = 0
	for _, p := range params {
		if len(p) > 0 {
			c.add(0, h, ts, false, p, now)
		}
	}
}

// reset empties the cache, keeping its chunks.
func (c *gopCache) reset() {
	c.cur, c.w = 0, 0
	c.entries = c.entries[:0]
	c.gops = c.gops[:0]
	c.active = false
	c.bytes, c.frames, c.filling = 0, 0, 0
	c.cursor = 0
}

// markAt is the first entry of the newest GOP whose keyframe arrived at or before t, or of the
// oldest GOP when none did (the pre-roll is shorter than asked).
func (c *gopCache) markAt(t time.Time) int {
	k := 0
	for i, g := range c.gops {
		if !g.at.After(t) {
			k = i
		}
	}
	if len(c.gops) == 0 {
		return 0
	}
	return c.gops[k].entry
}

// cutPoint is the GOP start at or before want that may be cut now: while a replay runs,
// nothing at or after its cursor is.
func (c *gopCache) cutPoint(want int) int {
	if !c.replaying || want <= c.cursor {
		return want
	}
	cut := 0
	for _, g := range c.gops {
		if g.entry <= c.cursor {
			cut = g.entry
		}
	}
	return cut
}

// cutFront drops the entries before cut, a GOP start (or all of them), keeping their chunks:
// the chunks that held only dropped entries move behind the others as spares.
func (c *gopCache) cutFront(cut int) {
	if cut <= 0 {
		return
	}
	if cut >= len(c.entries) {
		c.reset() // cutPoint cuts all only behind a replay's cursor: the replay is over
		c.replaying = false
		return
	}
	first := int(c.entries[cut].pos >> cacheChunkShift)
	for _, e := range c.entries[:cut] {
		c.bytes -= int(e.size)
		if e.track == 0 && e.marker {
			c.frames--
		}
	}
	n := copy(c.entries, c.entries[cut:])
	c.entries = c.entries[:n]
	if first > 0 {
		rotate(c.chunks, first)
		for i := range c.entries {
			c.entries[i].pos -= int32(first << cacheChunkShift)
		}
		c.cur -= first
	}
	k := 0
	for _, g := range c.gops {
		if g.entry >= cut {
			c.gops[k] = gopMark{entry: g.entry - cut, at: g.at}
			k++
		}
	}
	c.gops = c.gops[:k]
	if c.replaying {
		c.cursor -= cut
	}
}

// rotate moves s[:k] to the end of s, in place.
func rotate(s [][]byte, k int) {
	slices.Reverse(s[:k])
	slices.Reverse(s[k:])
	slices.Reverse(s)
}

// shrink drops the oldest GOP of a pre-roll to make room, and reports whether it could: the
// cache keeps at least the GOP being filled. While a replay has still to send part of the
// oldest GOP, the replay skips the rest of it to the next keyframe, the skipped frames counted
// (takeSkipped) as the forwarder's drops: what an upstream too slow for the burst cannot get
// is lost a GOP at a time, as on a queue overflow. Failing instead would lose the whole replay
// and wait for the camera's next keyframe, and a cache at its bound (a 4 s GOP at 2 Mbit/s
// with a 5 s pre-roll) would do so at every window opened over an uplink slower than memory.
func (c *gopCache) shrink() bool {
	if len(c.gops) < 2 {
		return false
	}
	next := c.gops[1].entry
	cut := c.cutPoint(next)
	if cut == 0 {
		if !c.replaying {
			return false
		}
		for _, e := range c.entries[c.cursor:next] {
			if e.track == 0 && e.marker {
				c.skipped++
			}
		}
		c.cursor, cut = next, next
	}
	c.cutFront(cut)
	c.shrinks++
	return true
}

// takeSkipped returns the video frames a replay skipped since it was last asked (shrink).
func (c *gopCache) takeSkipped() uint64 {
	n := c.skipped
	c.skipped = 0
	return n
}

// add appends one packet and reports whether the cache still holds a complete GOP.
func (c *gopCache) add(track int, h *rtp.Header, ts uint32, marker bool, payload []byte, now time.Time) bool {
	if !c.active {
		return false
	}
	if c.evicted.Load() {
		c.evictions++
		c.drop()
		return false
	}
	for len(c.entries) >= maxCacheEntries && c.shrink() {
	}
	if len(c.entries) >= maxCacheEntries || len(payload) > cacheChunk {
		c.overflows++
		c.drop()
		return false
	}
	if c.w > 0 && c.w+len(payload) >= cacheChunk {
		c.cur, c.w = c.cur+1, 0 // and an offset never reaches the next chunk's position
	}
	for c.cur == len(c.chunks) {
		chunk, res := c.budget.grow(c, max(c.rank.Load(), int64(c.filling+len(payload))), len(c.gops) < 2)
		if chunk != nil {
			c.chunks = append(c.chunks, chunk)
			break
		}
		if res != refusedOff && c.shrink() {
			continue // the pre-roll gave up its oldest GOP; its chunks may be free now
		}
		switch res {
		case refusedBudget:
			c.evictions++
		case refusedCamera:
			c.overflows++
		}
		c.drop()
		return false
	}
	copy(c.chunks[c.cur][c.w:], payload)
	c.entries = append(c.entries, cacheEntry{
		pos:    int32(c.cur<<cacheChunkShift | c.w),
		size:   int32(len(payload)),
		ts:     ts,
		ssrc:   h.SSRC,
		track:  uint8(track),
		pt:     h.PayloadType,
		marker: marker,
	})
	c.w += len(payload)
	c.bytes += len(payload)
	c.filling += len(payload)
	c.lastAt = now
	if track == 0 && marker {
		c.frames++
	}
	return true
}

// drop forgets the cache and gives every chunk back: it is wanted elsewhere, or this GOP does
// not fit. Caching resumes at the next keyframe.
func (c *gopCache) drop() {
	c.handBack()
	c.reset()
	c.replaying = false
}

// handBack returns all chunks to the budget and clears an eviction.
func (c *gopCache) handBack() {
	if len(c.chunks) > 0 {
		c.budget.release(c, c.chunks, false)
		clear(c.chunks)
		c.chunks = c.chunks[:0]
	}
	c.evicted.Store(false)
	c.cur, c.w = 0, 0
}

// close gives everything back and leaves the budget: the relay is done.
func (c *gopCache) close() {
	c.budget.release(c, c.chunks, true)
	clear(c.chunks)
	c.chunks = c.chunks[:0]
	c.reset()
	c.replaying = false
}

// beginReplay starts sending the cache to a new upstream session and reports whether there
// was anything fresh to send. It starts at the latest keyframe or, when from is set, at the
// newest one at or before from (as far back as the cache reaches).
func (c *gopCache) beginReplay(now, from time.Time) bool {
	c.replaying = false // a replay to a session that failed ends with it
	if !c.active || len(c.entries) == 0 || now.Sub(c.lastAt) > cacheFresh || c.evicted.Load() {
		return false
	}
	c.cursor = c.gops[len(c.gops)-1].entry
	if !from.IsZero() {
		c.cursor = c.markAt(from)
	}
	c.replaying = true
	return true
}

// next copies the next entry of a replay into dst (its sequence number and wall-clock time are
// the forwarder's) and reports whether there was one; at the end it ends the replay.
func (c *gopCache) next(dst *packet) bool {
	if c.cursor == len(c.entries) {
		c.replaying = false
		return false
	}
	e := &c.entries[c.cursor]
	c.cursor++
	chunk, off := e.pos>>cacheChunkShift, e.pos&(cacheChunk-1)
	dst.set(int(e.track), e.marker, e.pt, 0, e.ts, e.ssrc, c.chunks[chunk][off:off+e.size])
	return true
}

// CacheStats is what a relay's GOP cache holds and how often it was lost.
type CacheStats struct {
	Bytes, Frames int
	// Evictions counts the GOPs this camera lost to the gateway-wide budget; Overflows those
	// larger than one camera may cache.
	Evictions, Overflows uint64
	// PreRoll is how far back the cache reaches now, from its oldest keyframe to its latest
	// packet; Shrinks counts the GOPs a pre-roll gave up to the cache's bounds.
	PreRoll time.Duration
	Shrinks uint64
}

func (c *gopCache) stats() CacheStats {
	s := CacheStats{Evictions: c.evictions, Overflows: c.overflows, Shrinks: c.shrinks}
	if c.active {
		s.Bytes, s.Frames = c.bytes, c.frames
		if len(c.gops) > 0 {
			s.PreRoll = c.lastAt.Sub(c.gops[0].at)
		}
	}
	return s
}
