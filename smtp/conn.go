package smtp

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Bounds per session, enforced on the connection itself.
const (
	// maxCommandLine bounds a command line (RFC 4954 allows 12288 octets for an AUTH response).
	// Mail content is not a command: inside DATA and BDAT any line length is accepted.
	maxCommandLine = 16 << 10
	// maxErrorReplies closes a session that keeps earning 5xx replies: garbage, not a camera.
	maxErrorReplies = 10
	// lineHeadBytes of each command line are kept to recognise "BDAT <size>".
	lineHeadBytes = 32
)

// States of the end-of-DATA detector; the same machine as go-smtp's dataReader, so that both
// agree on where the mail ends.
const (
	dataBeginLine = iota
	dataDot
	dataDotCR
	dataCR
	dataMiddle
)

// sessionConn watches the SMTP byte stream of one session underneath go-smtp. go-smtp bounds
// line length for the whole session or not at all; a camera needs unbounded lines inside a mail,
// while a command line held in memory must stay small. So this conn tells the two apart from the
// stream itself (a 354 reply starts DATA, the lone "." line ends it, "BDAT n" is followed by n
// bytes), and it also clamps every deadline to the session's lifetime and records progress for
// eviction.
type sessionConn struct {
	net.Conn
	srv      *Server
	end      time.Time    // no read or write past this
	progress atomic.Int64 // unix nanoseconds of the last completed command or mail

	// Touched only by the session's goroutine (go-smtp reads and writes a conn from one).
	inData     bool
	dataState  int
	chunkLeft  int64 // BDAT bytes still to pass
	content    int   // mail content bytes since the last progress mark
	lineLen    int
	lineHead   []byte
	errReplies int
	hangUp     bool

	// handling is set while the Handler has the session's mail: such a session is not evicted,
	// which would lose the reply to a mail already being stored.
	handling atomic.Bool

	memMu  sync.Mutex // the session's goroutine reserves, any goroutine may Close
	held   int64      // bytes of the server's memory budget this session holds
	closed bool

	closeOnce sync.Once
}

func newSessionConn(c net.Conn, srv *Server, now time.Time) *sessionConn {
	sc := &sessionConn{
		Conn:     c,
		srv:      srv,
		end:      now.Add(srv.cfg.SessionTimeout),
		lineHead: make([]byte, 0, lineHeadBytes),
	}
	sc.progress.Store(now.UnixNano())
	return sc
}

func (c *sessionConn) Read(b []byte) (int, error) {
	if c.hangUp {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(b)
	if serr := c.scan(b[:n]); serr != nil {
		return 0, serr
	}
	return n, err
}

// scan follows the protocol state over bytes read. It returns go-smtp's ErrTooLongLine, which
// go-smtp answers with a 500 and a hang-up, for a command line over maxCommandLine.
func (c *sessionConn) scan(b []byte) error {
	for len(b) > 0 {
		switch {
		case c.chunkLeft > 0:
			k := min(int64(len(b)), c.chunkLeft)
			c.chunkLeft -= k
			b = b[k:]
			c.addContent(int(k))
			if c.chunkLeft == 0 {
				c.markProgress()
			}
		case c.inData:
			ch := b[0]
			b = b[1:]
			c.addContent(1)
			switch c.dataState {
			case dataBeginLine:
				switch ch {
				case '.':
					c.dataState = dataDot
				case '\r':
					c.dataState = dataCR
				default:
					c.dataState = dataMiddle
				}
			case dataDot:
				if ch == '\r' {
					c.dataState = dataDotCR
				} else {
					c.dataState = dataMiddle
				}
			case dataDotCR:
				if ch == '\n' {
					c.inData = false
					c.markProgress()
				} else {
					c.dataState = dataMiddle
				}
			case dataCR:
				if ch == '\n' {
					c.dataState = dataBeginLine
				} else {
					c.dataState = dataMiddle
				}
			case dataMiddle:
				if ch == '\r' {
					c.dataState = dataCR
				}
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.addToLine(b)
				if c.lineLen > maxCommandLine {
					return gosmtp.ErrTooLongLine
				}
				return nil
			}
			c.addToLine(b[:i])
			if c.lineLen > maxCommandLine {
				return gosmtp.ErrTooLongLine
			}
			b = b[i+1:]
			c.endCommandLine()
		}
	}
	return nil
}

func (c *sessionConn) addToLine(b []byte) {
	c.lineLen += len(b)
	if room := lineHeadBytes - len(c.lineHead); room > 0 {
		c.lineHead = append(c.lineHead, b[:min(room, len(b))]...)
	}
}

// endCommandLine notes a complete command; after "BDAT <size> [LAST]" the next size bytes are
// mail content whatever go-smtp answers (it reads and discards them even when it refuses). A
// size over MaxMessageBytes is not skipped: go-smtp discards such a chunk while streaming, and
// if this parse and go-smtp's ever disagreed, at most MaxMessageBytes would be read unbounded.
func (c *sessionConn) endCommandLine() {
	c.markProgress()
	if c.lineLen <= lineHeadBytes {
		if size, ok := bdatSize(c.lineHead); ok && size > 0 && size <= c.srv.cfg.MaxMessageBytes {
			c.chunkLeft = size
			c.extendDeadline(c.srv.cfg.DataTimeout)
		}
	}
	c.lineLen, c.lineHead = 0, c.lineHead[:0]
}

// bdatSize parses a BDAT command line exactly as go-smtp does: "BDAT", one space, then the
// whitespace-separated size (< 2^32) and an optional "LAST".
func bdatSize(line []byte) (int64, bool) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) <= 5 || !bytes.EqualFold(line[:4], []byte("BDAT")) || line[4] != ' ' {
		return 0, false
	}
	f := bytes.Fields(line[5:])
	if len(f) < 1 || len(f) > 2 {
		return 0, false
	}
	if len(f) == 2 && !bytes.EqualFold(f[1], []byte("LAST")) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(f[0]), 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

func (c *sessionConn) Write(b []byte) (int, error) {
	if len(b) >= 4 && string(b[:4]) == "354 " {
		c.inData, c.dataState = true, dataBeginLine
		c.extendDeadline(c.srv.cfg.DataTimeout)
	}
	if len(b) > 0 && b[0] == '5' {
		c.errReplies++
		if c.errReplies >= maxErrorReplies {
			// Let go-smtp finish this reply, then see the client as gone.
			c.hangUp = true
		}
	}
	return c.Conn.Write(b)
}

// extendDeadline gives a mail transfer its own, longer read deadline than a command's.
func (c *sessionConn) extendDeadline(d time.Duration) {
	_ = c.SetReadDeadline(time.Now().Add(d))
}

// writeGrace lets the server say why it hangs up (421) after the session's lifetime is over.
const writeGrace = 5 * time.Second

func clamp(t, end time.Time) time.Time {
	if t.IsZero() || t.After(end) {
		return end
	}
	return t
}

func (c *sessionConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *sessionConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(clamp(t, c.end))
}

func (c *sessionConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(clamp(t, c.end.Add(writeGrace)))
}

func (c *sessionConn) markProgress() {
	c.content = 0
	c.progress.Store(time.Now().UnixNano())
}

// progressBytes of mail content count as progress, like a completed command: a camera
// uploading its snapshot stays fresher than sessions that trickle or stall, and is not the one
// closed to make room, while a trickler at a byte a second needs most of a day for one mark.
const progressBytes = 64 << 10

func (c *sessionConn) addContent(n int) {
	if c.content += n; c.content >= progressBytes {
		c.markProgress()
	}
}

// reserve charges n bytes to the server's memory budget for this session; it fails when the
// budget is spent or the session is closed.
func (c *sessionConn) reserve(n int64) bool {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if c.closed || !c.srv.budget.take(n) {
		return false
	}
	c.held += n
	return true
}

// maxEvictionsPerReserve bounds how many sessions one reservation may close.
const maxEvictionsPerReserve = 8

// reserveOrEvict is reserve that, when the budget is spent, closes sessions that have gone
// longer than this one without completing a command or a mail and that hold a mail's memory
// (stalled uploads, trickles) to make room. A session never pushes out one fresher than itself,
// nor one that holds no more than its session (a camera idle between alarms: closing it frees
// little and costs the camera its connection), and a session that would then hold more than an
// honest camera mail needs (mailAllowance) pushes out nobody: it is the one refused.
func (c *sessionConn) reserveOrEvict(n int64) bool {
	if c.reserve(n) {
		return true
	}
	if c.heldBytes()+n > mailAllowance {
		return false
	}
	for range maxEvictionsPerReserve {
		if !c.srv.evictStalerThan(c, true) {
			return false
		}
		if c.reserve(n) {
			return true
		}
	}
	return false
}

// unreserve gives n of the bytes held back to the budget.
func (c *sessionConn) unreserve(n int64) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if c.closed {
		return // Close gave back everything
	}
	n = min(n, c.held)
	c.held -= n
	c.srv.budget.give(n)
}

func (c *sessionConn) isClosed() bool {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	return c.closed
}

func (c *sessionConn) heldBytes() int64 {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	return c.held
}

// Close closes the connection once, releases its session slot and gives back its memory.
func (c *sessionConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.srv.release(c)
		c.memMu.Lock()
		c.closed = true
		c.srv.budget.give(c.held)
		c.held = 0
		c.memMu.Unlock()
	})
	return err
}
