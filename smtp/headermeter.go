package smtp

import (
	"fmt"
	"io"
)

// maxHeaderLines bounds the lines of one header block (the message's or a part's).
const maxHeaderLines = 1000

// headerMeter sits between a mail and go-message and charges the memory that go-message's
// header parsing will hold. go-message bounds the message header's bytes (MaxHeaderBytes) but
// not a part's, and it holds some 400 bytes per header line whatever the line's length, so a
// part header of short lines would cost a hundred times its size. The meter follows the line
// structure only: a header block starts at the beginning of the mail and after any line that
// begins with "--" (a boundary, or text that looks like one: charging it too is the safe side)
// and ends at the first empty line. Each block is bounded to maxHeaderBytes and maxHeaderLines.
type headerMeter struct {
	r     io.Reader
	grant *grant

	inHeader   bool
	lineLen    int  // bytes of the current line so far
	lastCR     bool // the line's last byte was '\r'
	dashes     int  // leading '-' bytes of the current line, up to 2
	blockBytes int
	blockLines int

	credit    int64 // bytes granted and not yet charged
	noMemory  bool  // the budget refused: the mail cannot be read
	stickyErr error
}

func newHeaderMeter(r io.Reader, g *grant) *headerMeter {
	return &headerMeter{r: r, grant: g, inHeader: true}
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
		if m.inHeader {
			cost += headerByteCost
			if m.lineLen == 0 {
				cost += headerLineCost
			}
		}
		if ch != '\n' {
			if m.lineLen < 2 && m.dashes == m.lineLen && ch == '-' {
				m.dashes++
			}
			m.lineLen++
			m.lastCR = ch == '\r'
			if m.inHeader {
				m.blockBytes++
			}
			if m.inHeader && m.blockBytes > maxHeaderBytes {
				return m.bound(i, cost, fmt.Errorf("a header of more than %d bytes", maxHeaderBytes))
			}
			continue
		}
		blank := m.lineLen == 0 || m.lineLen == 1 && m.lastCR
		switch {
		case m.inHeader && blank:
			m.inHeader = false
		case m.inHeader:
			m.blockLines++
		case m.dashes == 2:
			m.inHeader, m.blockBytes, m.blockLines = true, 0, 0
		}
		m.lineLen, m.lastCR, m.dashes = 0, false, 0
		if m.blockLines > maxHeaderLines {
			return m.bound(i, cost, fmt.Errorf("a header of more than %d lines", maxHeaderLines))
		}
	}
	if err := m.charge(cost); err != nil {
		return 0, err
	}
	return len(b), nil
}

// bound ends the mail's reading at a header bound: the k bytes before it still pass.
func (m *headerMeter) bound(k int, cost int64, err error) (int, error) {
	if cerr := m.charge(cost); cerr != nil {
		return 0, cerr
	}
	return k, err
}

// charge takes cost from what was granted, asking the grant for more in budgetChunk steps.
func (m *headerMeter) charge(cost int64) error {
	if cost <= m.credit {
		m.credit -= cost
		return nil
	}
	need := (cost - m.credit + budgetChunk - 1) / budgetChunk * budgetChunk
	if !m.grant.reserve(need) {
		m.noMemory = true
		return errNoMemory
	}
	m.credit += need - cost
	return nil
}
