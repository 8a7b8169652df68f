package smtp

import (
	"errors"
	"sync/atomic"
)

// DefaultMemoryBudget bounds what all sessions and the mails being read hold together (issue 13:
// one budget, 16 MiB, for the session count and the attachments). SPEC names no key for it.
const DefaultMemoryBudget = 16 << 20

// What the budget is charged, in bytes. The figures are upper estimates of what the code holds,
// so that the budget is spent before the memory is, never after.
const (
	// sessionCost: go-smtp's bufio reader and writer (4 KiB each), one command line of up to
	// maxCommandLine held as bytes and as a string, the session's goroutine stack.
	sessionCost = 64 << 10
	// mailCost: what a mail being read holds besides its headers and its snapshot: the text
	// searched for motion words, go-message's 4 KiB buffers (one per multipart level, one for
	// the message, one per decoder) and the parser's own values.
	mailCost = maxTextBytes + (maxDepth+4)*(4<<10) + 16<<10
	// budgetChunk is the step in which a snapshot or a header asks the budget for more.
	budgetChunk = 64 << 10
	// headerLineCost and headerByteCost are what go-message holds per header line and per header
	// byte while it reads a header: it starts each line with a 256-byte buffer and keeps a field
	// struct, the key and a copy of the value beside the raw line.
	headerLineCost = 384
	headerByteCost = 2
	// mailAllowance is the most one session holds with an honest camera mail: the session, the
	// mail, its snapshot twice (collected, then joined into one slice) and headers of some 700
	// short lines. A session asking for more takes only what is free: it closes no other.
	mailAllowance = sessionCost + mailCost + 2*(MaxSnapshotBytes+budgetChunk) + 4*budgetChunk
)

// errNoMemory is what a reservation that the budget refused makes a read fail with.
var errNoMemory = errors.New("smtp: memory budget spent")

// memBudget is the server's memory budget: a count of bytes granted, never above max.
type memBudget struct {
	max  int64
	used atomic.Int64
}

// take grants n bytes if they fit.
func (b *memBudget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *memBudget) give(n int64) { b.used.Add(-n) }

func (b *memBudget) inUse() int64 { return b.used.Load() }

// grant is the part of the budget that one mail holds while it is read and handled. A nil grant
// (ParseMail, outside a server) grants everything.
type grant struct {
	conn *sessionConn
	held int64
}

// reserve asks for n more bytes, closing stale sessions to make room if need be.
func (g *grant) reserve(n int64) bool {
	if g == nil {
		return true
	}
	if !g.conn.reserveOrEvict(n) {
		return false
	}
	g.held += n
	return true
}

// release gives back n of the bytes held.
func (g *grant) release(n int64) {
	if g == nil {
		return
	}
	n = min(n, g.held)
	g.held -= n
	g.conn.unreserve(n)
}

// chunkedBuffer collects bytes in budgetChunk pieces, each granted first, so that growing it
// never copies (and so never holds twice) what it already has. A refused grant drops what it
// held.
type chunkedBuffer struct {
	grant   *grant
	chunks  [][]byte
	n       int
	refused bool
}

func (w *chunkedBuffer) drop() {
	w.grant.release(int64(len(w.chunks)) * budgetChunk)
	w.refused, w.chunks, w.n = true, nil, 0
}

func (w *chunkedBuffer) Write(b []byte) (int, error) {
	if w.refused {
		return 0, errNoMemory
	}
	written := 0
	for len(b) > 0 {
		if len(w.chunks) == 0 || len(w.chunks[len(w.chunks)-1]) == budgetChunk {
			if !w.grant.reserve(budgetChunk) {
				w.drop()
				return written, errNoMemory
			}
			w.chunks = append(w.chunks, make([]byte, 0, budgetChunk))
		}
		last := &w.chunks[len(w.chunks)-1]
		k := min(len(b), budgetChunk-len(*last))
		*last = append(*last, b[:k]...)
		b, written, w.n = b[k:], written+k, w.n+k
	}
	return written, nil
}

// bytes joins the chunks into one slice, which stays charged to the grant, and gives the
// chunks back. It returns nil when the budget has no room for the copy.
func (w *chunkedBuffer) bytes() []byte {
	if w.refused {
		return nil
	}
	if !w.grant.reserve(int64(w.n)) {
		w.drop()
		return nil
	}
	out := make([]byte, 0, w.n)
	for _, c := range w.chunks {
		out = append(out, c...)
	}
	w.grant.release(int64(len(w.chunks)) * budgetChunk)
	w.chunks = nil
	return out
}
