package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Bounds on a header block (the message's or a part's) and on what the meter keeps to follow
// the multipart structure.
const (
	maxHeaderLines = 1000
	// maxBoundary: RFC 2046 §5.1.1 allows boundaries of 70 characters; a longer one than this
	// ends the mail's reading rather than being followed by a wider net.
	maxBoundary = 200
	// maxContentType bounds the Content-Type field the meter keeps to learn a block's boundary.
	maxContentType = 8 << 10
	// releaseLag is how far go-message may read behind the meter: one 4 KiB bufio.Reader for the
	// message and one per multipart level (textproto's peekBufferSize), with room to spare. A
	// header is given back only once the meter is this far past the header that replaced it,
	// because go-message holds the old part until it has read the new part's header.
	releaseLag = 64 << 10
)

// headerMeter sits between a mail and go-message and charges, before go-message holds them, the
// header blocks it will hold. go-message bounds the message header's bytes (MaxHeaderBytes) but
// not a part's, and it holds some 400 bytes per header line whatever the line's length, so a
// part header of short lines costs a hundred times its size. Each block is bounded to
// maxHeaderBytes and maxHeaderLines.
//
// What go-message holds at once is the message header and, while a part is read, the header of
// each multipart part on the way down to it: a part's header is dropped when the next part of
// the same multipart begins or the multipart ends. The meter follows the same structure: a
// header block starts at the beginning of the mail and after a line that go-message takes as a
// boundary of an open multipart (the boundary it learns from the block's Content-Type, parsed
// by go-message's own code), and its charge is given back once the block is replaced (after
// releaseLag). A "--" line that no open multipart declared is body text, as it is to go-message.
type headerMeter struct {
	r     io.Reader
	grant *grant

	pos        int64 // bytes passed
	inHeader   bool
	lineLen    int    // bytes of the current line so far
	lastCR     bool   // the line's last byte was '\r'
	head       []byte // the line's first bytes, enough to tell a boundary
	blockBytes int
	blockLines int
	blocks     int // header blocks started, the message's included

	// The current block's Content-Type: field, the first one (the one go-message reads), raw
	// with its continuation lines.
	ctype      []byte
	ctypeState int // ctypeNone, ctypeLine (the current line continues it) or ctypeDone
	ctypeKey   int // bytes of the line that matched "content-type" so far; -1: not the field

	levels   []meterLevel // the blocks go-message holds: the message's, then a part's per depth
	pending  int64        // the cost of blocks replaced since the last block ended
	draining int64        // the cost of blocks given back at drainAt
	drainAt  int64

	held      int64 // cost of the blocks charged and not given back: levels, pending, draining
	reserved  int64 // bytes granted, a multiple of budgetChunk, at least held
	noMemory  bool  // the budget refused: the mail cannot be read
	stickyErr error
}

// meterLevel is one header block go-message holds.
type meterLevel struct {
	cost      int64
	multipart bool   // its Content-Type is multipart: boundary lines follow
	boundary  string // as go-message reads it
	closed    bool   // its close delimiter passed: go-message reads no more parts of it
}

const (
	ctypeNone = iota
	ctypeLine
	ctypeDone
)

const contentTypeKey = "content-type"

func newHeaderMeter(r io.Reader, g *grant) *headerMeter {
	m := &headerMeter{r: r, grant: g, head: make([]byte, 0, 2+maxBoundary+2)}
	m.startBlock()
	return m
}

func (m *headerMeter) startBlock() {
	m.inHeader, m.blockBytes, m.blockLines = true, 0, 0
	m.ctype, m.ctypeState = m.ctype[:0], ctypeNone
	m.levels = append(m.levels, meterLevel{})
	m.blocks++
}

func (m *headerMeter) Read(p []byte) (int, error) {
	if m.stickyErr != nil {
		return 0, m.stickyErr
	}
	n, err := m.r.Read(p)
	// What came before the bound passes, so that go-message still reads the headers before it.
	if k, merr := m.scan(p[:n]); merr != nil {
		m.stickyErr = merr
		if k == 0 {
			return 0, merr
		}
		return k, nil
	}
	return n, err
}

// scan follows the lines of b and charges what header lines cost. On error it returns how many
// bytes of b came before the bound (all charged).
func (m *headerMeter) scan(b []byte) (int, error) {
	var cost int64
	for i, ch := range b {
		m.pos++
		if m.inHeader {
			cost += headerByteCost
			if m.lineLen == 0 {
				cost += headerLineCost
			}
		}
		if ch != '\n' {
			if m.inHeader {
				m.blockBytes++
				if err := m.followContentType(ch); err != nil {
					return m.bound(i, cost, err)
				}
				if m.blockBytes > maxHeaderBytes {
					return m.bound(i, cost, fmt.Errorf("a header of more than %d bytes", maxHeaderBytes))
				}
			}
			if len(m.head) < cap(m.head) {
				m.head = append(m.head, ch)
			}
			m.lineLen++
			m.lastCR = ch == '\r'
			continue
		}
		// The line's cost is its block's, whatever block the line's end starts.
		m.levels[len(m.levels)-1].cost += cost
		m.held += cost
		cost = 0
		if err := m.endLine(); err != nil {
			return m.bound(i, 0, err)
		}
	}
	if err := m.charge(cost); err != nil {
		return 0, err
	}
	return len(b), nil
}

// followContentType keeps the block's first Content-Type field, whose key go-message finds as
// the line's bytes up to ':' without surrounding blanks, compared case-insensitively.
func (m *headerMeter) followContentType(ch byte) error {
	if m.lineLen == 0 {
		continuation := ch == ' ' || ch == '\t'
		if m.ctypeState == ctypeLine && !continuation {
			m.ctypeState = ctypeDone
		}
		m.ctypeKey = -1
		if m.ctypeState == ctypeNone && !continuation {
			m.ctypeKey = 0
		}
	}
	switch {
	case m.ctypeState == ctypeLine:
		if len(m.ctype) >= maxContentType {
			return fmt.Errorf("a Content-Type field of more than %d bytes", maxContentType)
		}
		m.ctype = append(m.ctype, ch)
	case m.ctypeKey < 0:
	case m.ctypeKey < len(contentTypeKey):
		lower := ch
		if 'A' <= ch && ch <= 'Z' {
			lower += 'a' - 'A'
		}
		if lower == contentTypeKey[m.ctypeKey] {
			m.ctypeKey++
		} else {
			m.ctypeKey = -1
		}
	case ch == ':':
		m.ctypeState, m.ctypeKey = ctypeLine, -1
		m.ctype = append(m.ctype, "Content-Type:"...)
	case ch != ' ' && ch != '\t':
		m.ctypeKey = -1
	}
	return nil
}

// endLine takes the line that ended at m.pos.
func (m *headerMeter) endLine() error {
	defer func() { m.lineLen, m.lastCR, m.head = 0, false, m.head[:0] }()
	if m.inHeader {
		if m.ctypeState == ctypeLine {
			m.ctype = append(m.ctype, '\n')
		}
		if blank := m.lineLen == 0 || m.lineLen == 1 && m.lastCR; !blank {
			if m.blockLines++; m.blockLines > maxHeaderLines {
				return fmt.Errorf("a header of more than %d lines", maxHeaderLines)
			}
			return nil
		}
		return m.endBlock()
	}
	k, closing := m.boundaryLevel()
	if k < 0 {
		return nil
	}
	for _, lv := range m.levels[k+1:] {
		m.pending += lv.cost
	}
	m.levels = m.levels[:k+1]
	if closing {
		m.levels[k].closed = true
		return nil
	}
	m.startBlock()
	return nil
}

// endBlock ends the current header block at its blank line: go-message now reads its body,
// multipart or not, and has dropped (once it caught up, releaseLag) the blocks it replaced.
func (m *headerMeter) endBlock() error {
	m.inHeader = false
	m.drainDue()
	if m.pending > 0 {
		m.draining += m.pending
		m.pending = 0
		m.drainAt = m.pos + releaseLag
	}
	if m.ctypeState == ctypeNone || len(m.levels) > maxDepth {
		// No Content-Type, or a multipart deeper than go-message is let read: no parts follow.
		return nil
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(m.ctype, "\r\n"...))))
	mediaType, params, _ := (&message.Header{Header: h}).ContentType()
	if !strings.HasPrefix(mediaType, "multipart/") {
		return nil
	}
	boundary := params["boundary"]
	if len(boundary) > maxBoundary {
		return fmt.Errorf("a multipart boundary of more than %d bytes", maxBoundary)
	}
	lv := &m.levels[len(m.levels)-1]
	lv.multipart, lv.boundary = true, boundary
	return nil
}

// boundaryLevel reports which open multipart the line in head ends a part of (-1: none), and
// whether it is that multipart's close delimiter. The outermost match wins: an outer boundary
// ends the outer part before any inner reader sees the line. Like go-message's reader
// (textproto's matchAfterPrefix), a part ends at "--" boundary followed by a blank, the line's
// end, or "--"; a line that goes on otherwise is body.
func (m *headerMeter) boundaryLevel() (level int, closing bool) {
	line := m.head
	if len(line) < 2 || line[0] != '-' || line[1] != '-' {
		return -1, false
	}
	for k, lv := range m.levels {
		if !lv.multipart || lv.closed || !bytes.HasPrefix(line[2:], []byte(lv.boundary)) {
			continue
		}
		rest := line[2+len(lv.boundary):]
		switch {
		case len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r':
			return k, false
		case len(rest) >= 2 && rest[0] == '-' && rest[1] == '-':
			return k, true
		}
	}
	return -1, false
}

// drainDue gives back the blocks go-message has dropped by now.
func (m *headerMeter) drainDue() {
	if m.draining > 0 && m.pos >= m.drainAt {
		m.held -= m.draining
		m.draining = 0
	}
}

// bound ends the mail's reading at a header bound: the k bytes before it still pass.
func (m *headerMeter) bound(k int, cost int64, err error) (int, error) {
	if cerr := m.charge(cost); cerr != nil {
		return 0, cerr
	}
	return k, err
}

// charge adds cost to the current block's, gives back what go-message has dropped, and keeps
// the grant at what is held (the blocks, and those replaced but maybe not yet dropped)
// rounded up to budgetChunk.
func (m *headerMeter) charge(cost int64) error {
	m.levels[len(m.levels)-1].cost += cost
	m.held += cost
	m.drainDue()
	want := (m.held + budgetChunk - 1) / budgetChunk * budgetChunk
	switch {
	case want > m.reserved:
		if !m.grant.reserve(want - m.reserved) {
			m.noMemory = true
			return errNoMemory
		}
	case want < m.reserved:
		m.grant.release(m.reserved - want)
	}
	m.reserved = want
	return nil
}
