package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Bounds on what one mail may make us hold or do. The input itself is bounded by maxBytes.
const (
	MaxSnapshotBytes = 2 << 20   // a JPEG larger than this is not kept
	maxTextBytes     = 64 << 10  // decoded text searched for motion words
	maxHeaderBytes   = 256 << 10 // each header block: the message's and each part's
	maxDepth         = 8         // multipart nesting
	maxParts         = 100       // leaf parts visited
	maxDescription   = 160       // runes of Alarm.Text after the "smtp: " prefix
)

// ErrMessageTooLarge is returned by ParseMail for input longer than its maxBytes.
var ErrMessageTooLarge = errors.New("smtp: message too large")

// ErrMalformed marks a mail that could only be partly understood; the Alarm returned with it
// holds what could be read.
var ErrMalformed = errors.New("smtp: malformed mail")

// Alarm is one camera alarm mail, reduced to what the agent needs.
type Alarm struct {
	Recipients []string   // local parts of RCPT TO (e.g. "cam-001122334455"), as sent
	From       string     // MAIL FROM address; the header From address when MAIL FROM was empty
	RemoteIP   netip.Addr // the client that delivered the mail
	// Authenticated is true when the session passed AUTH against Config.Username/Password (the
	// configured smtp login or the gateway's generated one); never when no username is set and
	// any login is taken.
	Authenticated bool
	Subject       string    // decoded (RFC 2047, any charset), valid UTF-8
	Motion        bool      // subject or body names motion, alarm or detection
	Text          string    // short description for motion_data, e.g. "smtp: Motion Detection Alarm"
	Snapshot      []byte    // the first JPEG (attachment or inline), nil if none or over MaxSnapshotBytes
	Snapshots     int       // how many JPEGs the mail carried
	Received      time.Time // when the end of the mail was read
}

// motionWords are matched against the lower-cased subject and body. Cameras name motion in
// their firmware's language: Hikvision and Dahua in Chinese (simplified and traditional), the
// cheaper Russian-market ones in Russian.
var motionWords = [...]string{
	"motion", "alarm", "detect",
	"侦测", "报警", "告警", "警报", "动态检测", "移动检测", // simplified Chinese
	"偵測", "報警", "警報", "動態檢測", "移動檢測", // traditional Chinese
	"движени", "тревог", "обнаружен", "детект", // Russian
}

// containsMotionWord reports whether s (already lower-cased) names motion.
func containsMotionWord(s string) bool {
	for _, w := range motionWords {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// readRecorder remembers the first error of the underlying reader, so that a transport failure
// (size limit, timeout) is told apart from a MIME error that go-message reports in its own words.
type readRecorder struct {
	r   io.Reader
	n   int64 // bytes left before the input counts as too large
	err error
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	if rr.err != nil {
		return 0, rr.err
	}
	if rr.n <= 0 {
		// Exactly at the limit is fine if nothing follows.
		var one [1]byte
		n, err := rr.r.Read(one[:])
		if n == 0 && err != nil {
			rr.err = err
		} else {
			rr.err = ErrMessageTooLarge
		}
		return 0, rr.err
	}
	if int64(len(p)) > rr.n {
		p = p[:rr.n]
	}
	n, err := rr.r.Read(p)
	rr.n -= int64(n)
	if err != nil {
		rr.err = err
	}
	return n, err
}

// ParseMail reads one RFC 5322 message of at most maxBytes (<= 0: no limit) and reduces it to an
// Alarm. It always consumes r to its end or to the limit. Errors: ErrMessageTooLarge, a read
// error of r (wrapped), or ErrMalformed together with the part of the Alarm that was understood.
func ParseMail(r io.Reader, maxBytes int64) (Alarm, error) {
	a, _, err := parseMail(r, maxBytes, nil)
	return a, err
}

// parseOutcome says what a mail could not keep for want of memory.
type parseOutcome struct {
	noMemory        bool // its headers found no room in the budget: the mail was not understood
	snapshotDropped bool // its snapshot found no room and was not kept; the alarm stands
}

// parseMail is ParseMail charging the memory it holds to g (nil: no budget).
func parseMail(r io.Reader, maxBytes int64, g *grant) (Alarm, parseOutcome, error) {
	if maxBytes <= 0 {
		maxBytes = 1<<63 - 1
	}
	rr := &readRecorder{r: r, n: maxBytes}
	meter := newHeaderMeter(rr, g)
	p := mailParser{grant: g}
	perr := p.parse(meter)
	if rr.err == nil {
		// Whatever go-message left unread (epilogues, parts past the bounds) still counts
		// against the size limit and must leave the connection.
		_, _ = io.Copy(io.Discard, rr)
	}
	a := p.alarm()
	out := parseOutcome{noMemory: meter.noMemory, snapshotDropped: p.snapshotDropped}
	switch {
	case rr.err == nil || errors.Is(rr.err, io.EOF):
	case errors.Is(rr.err, ErrMessageTooLarge):
		return a, out, fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, maxBytes)
	default:
		return a, out, fmt.Errorf("smtp: reading mail: %w", rr.err)
	}
	if perr != nil {
		return a, out, fmt.Errorf("%w: %w", ErrMalformed, perr)
	}
	return a, out, nil
}

type mailParser struct {
	subject     string
	rawSubject  bool // subject carried raw 8-bit bytes that were not UTF-8
	from        string
	textCharset string // charset of the first text part, to read a raw 8-bit subject with
	text        bytes.Buffer
	snapshot    []byte
	snapshots   int
	parts       int

	grant           *grant // what the snapshot is charged to; nil: no budget
	snapshotDropped bool
}

func (p *mailParser) parse(r io.Reader) error {
	e, err := message.ReadWithOptions(r, &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if e == nil {
		return err
	}
	h := mail.Header{Header: e.Header}
	if s, serr := h.Subject(); serr == nil {
		p.subject = s
	} else {
		p.subject = h.Get("Subject")
	}
	if !utf8.ValidString(p.subject) {
		p.rawSubject = true
	}
	if addrs, aerr := h.AddressList("From"); aerr == nil && len(addrs) > 0 {
		p.from = addrs[0].Address
	}
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return err
	}
	return p.walk(e, 0)
}

func (p *mailParser) walk(e *message.Entity, depth int) error {
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxDepth {
			return fmt.Errorf("multipart nested deeper than %d", maxDepth)
		}
		for p.parts < maxParts {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if part == nil {
				return err
			}
			if werr := p.walk(part, depth+1); werr != nil {
				return werr
			}
		}
		return nil
	}
	p.parts++
	mediaType, params, _ := e.Header.ContentType()
	if strings.HasPrefix(mediaType, "text/") || mediaType == "" {
		if p.textCharset == "" {
			p.textCharset = params["charset"]
		}
		_, err := io.Copy(&p.text, io.LimitReader(e.Body, int64(maxTextBytes-p.text.Len())))
		p.text.WriteByte('\n')
		return err
	}
	return p.readBinary(e.Body)
}

// readBinary keeps the part if it is a JPEG, whatever its declared type: cameras label
// snapshots image/jpeg, application/octet-stream, or nothing useful at all.
func (p *mailParser) readBinary(body io.Reader) error {
	var magic [3]byte
	n, err := io.ReadFull(body, magic[:])
	if n < 3 || magic != [3]byte{0xFF, 0xD8, 0xFF} {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	p.snapshots++
	if p.snapshot != nil {
		return nil
	}
	buf := &chunkedBuffer{grant: p.grant}
	_, _ = buf.Write(magic[:])
	m, err := io.Copy(buf, io.LimitReader(body, MaxSnapshotBytes-3+1))
	if buf.refused {
		// No room for it: the rest of the part is read past, not kept, and the alarm stands.
		p.snapshotDropped = true
		_, err = io.Copy(io.Discard, body)
		return err
	}
	if err != nil {
		buf.drop()
		return err
	}
	if m+3 <= MaxSnapshotBytes {
		p.snapshot = buf.bytes()
		p.snapshotDropped = p.snapshot == nil
	} else {
		buf.drop()
	}
	return nil
}

func (p *mailParser) alarm() Alarm {
	subject := p.subject
	if p.rawSubject {
		subject = decodeRaw(subject, p.textCharset)
	}
	subject = strings.TrimSpace(strings.ToValidUTF8(subject, "\uFFFD"))
	body := strings.ToValidUTF8(p.text.String(), "\uFFFD")
	desc := subject
	if desc == "" {
		desc = firstLine(body)
	}
	return Alarm{
		From:      p.from,
		Subject:   subject,
		Motion:    containsMotionWord(strings.ToLower(subject)) || containsMotionWord(strings.ToLower(body)),
		Text:      "smtp: " + truncateRunes(desc, maxDescription),
		Snapshot:  p.snapshot,
		Snapshots: p.snapshots,
	}
}

// decodeRaw reads a header that a camera wrote as raw 8-bit bytes instead of RFC 2047: in the
// charset of its body if it named one, else GB18030, the superset of what Chinese firmware sends.
func decodeRaw(s, cs string) string {
	if cs == "" || strings.EqualFold(cs, "us-ascii") || strings.EqualFold(cs, "utf-8") {
		cs = "gb18030"
	}
	r, err := CharsetReader(cs, strings.NewReader(s))
	if err != nil {
		return s
	}
	b, err := io.ReadAll(io.LimitReader(r, 4*int64(len(s))+16))
	if err != nil {
		return s
	}
	return string(b)
}

func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return ""
}

func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
