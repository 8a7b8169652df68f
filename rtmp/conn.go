package rtmp

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// RTMP message types (RTMP 1.0 section 5.4 and 7.1).
const (
	rtmpSetChunkSize     = 1
	rtmpAbort            = 2
	rtmpAck              = 3
	rtmpUserControl      = 4
	rtmpWindowAckSize    = 5
	rtmpSetPeerBandwidth = 6
	rtmpAudio            = 8
	rtmpVideo            = 9
	rtmpDataAMF0         = 18
	rtmpCommandAMF0      = 20
)

// Chunk stream ids, as ffmpeg and OBS use them.
const (
	csidControl = 2
	csidCommand = 3
	csidData    = 5
	csidAudio   = 4
	csidVideo   = 6
)

const (
	rtmpHandshakeSize = 1536
	rtmpOutChunkSize  = 65536
	// rtmpMaxMessage bounds one message from the server: a publisher is only ever sent
	// control messages and short commands.
	rtmpMaxMessage = 1 << 20
	// rtmpMaxChunkStreams bounds the per-chunk-stream state a server can make us keep.
	rtmpMaxChunkStreams = 32
)

// rtmpMessage is one message read from the server. body is only valid until the next read.
type rtmpMessage struct {
	typ      byte
	streamID uint32
	ts       uint32
	body     []byte
}

// chunkStreamIn is the reassembly state of one incoming chunk stream.
type chunkStreamIn struct {
	ts, delta uint32
	length    uint32
	typ       byte
	streamID  uint32
	extended  bool
	started   bool // a type 0 header has been seen
	buf       []byte
}

// chunkReader reassembles messages from a stream of RTMP chunks.
type chunkReader struct {
	r         io.Reader
	chunkSize uint32
	streams   map[uint32]*chunkStreamIn
	hdr       [16]byte
}

func newChunkReader(r io.Reader) *chunkReader {
	return &chunkReader{r: r, chunkSize: 128, streams: make(map[uint32]*chunkStreamIn)}
}

func (cr *chunkReader) readFull(n int) ([]byte, error) {
	b := cr.hdr[:n]
	_, err := io.ReadFull(cr.r, b)
	return b, err
}

// readMessage returns the next complete message, handling Set Chunk Size itself.
func (cr *chunkReader) readMessage() (rtmpMessage, error) {
	for {
		m, ok, err := cr.readChunk()
		if err != nil {
			return rtmpMessage{}, err
		}
		if !ok {
			continue
		}
		if m.typ == rtmpSetChunkSize {
			if len(m.body) < 4 {
				return rtmpMessage{}, errors.New("RTMP: short Set Chunk Size")
			}
			size := binary.BigEndian.Uint32(m.body) & 0x7fffffff
			if size < 1 {
				return rtmpMessage{}, errors.New("RTMP: chunk size 0")
			}
			cr.chunkSize = size
		}
		return m, nil
	}
}

// readChunk reads one chunk; ok says it completed a message.
func (cr *chunkReader) readChunk() (m rtmpMessage, ok bool, err error) {
	b, err := cr.readFull(1)
	if err != nil {
		return m, false, err
	}
	fmtType := b[0] >> 6
	csid := uint32(b[0] & 0x3f)
	switch csid {
	case 0:
		if b, err = cr.readFull(1); err != nil {
			return m, false, err
		}
		csid = 64 + uint32(b[0])
	case 1:
		if b, err = cr.readFull(2); err != nil {
			return m, false, err
		}
		csid = 64 + uint32(b[0]) + uint32(b[1])<<8
	}
	cs := cr.streams[csid]
	if cs == nil {
		if len(cr.streams) >= rtmpMaxChunkStreams {
			return m, false, errors.New("RTMP: too many chunk streams")
		}
		cs = &chunkStreamIn{}
		cr.streams[csid] = cs
	}
	if fmtType != 0 && !cs.started {
		return m, false, fmt.Errorf("RTMP: chunk stream %d starts without a full header", csid)
	}
	if fmtType != 3 && len(cs.buf) > 0 {
		return m, false, fmt.Errorf("RTMP: new message on chunk stream %d before the last one ended", csid)
	}
	var tsField uint32
	switch fmtType {
	case 0:
		if b, err = cr.readFull(11); err != nil {
			return m, false, err
		}
		tsField = uint24(b)
		cs.length = uint24(b[3:])
		cs.typ = b[6]
		cs.streamID = binary.LittleEndian.Uint32(b[7:])
		cs.started = true
	case 1:
		if b, err = cr.readFull(7); err != nil {
			return m, false, err
		}
		tsField = uint24(b)
		cs.length = uint24(b[3:])
		cs.typ = b[6]
	case 2:
		if b, err = cr.readFull(3); err != nil {
			return m, false, err
		}
		tsField = uint24(b)
	}
	if fmtType != 3 {
		cs.extended = tsField == 0xffffff
	}
	if cs.extended {
		// Type 3 chunks repeat the extended timestamp of their header, as ffmpeg writes them.
		if b, err = cr.readFull(4); err != nil {
			return m, false, err
		}
		if fmtType != 3 {
			tsField = binary.BigEndian.Uint32(b)
		}
	}
	if cs.length > rtmpMaxMessage {
		return m, false, fmt.Errorf("RTMP: message of %d bytes exceeds %d", cs.length, rtmpMaxMessage)
	}
	if len(cs.buf) == 0 {
		switch fmtType {
		case 0:
			cs.ts = tsField
		case 1, 2:
			cs.delta = tsField
			cs.ts += tsField
		case 3:
			cs.ts += cs.delta
		}
	}
	n := min(cs.length-uint32(len(cs.buf)), cr.chunkSize)
	start := len(cs.buf)
	cs.buf = append(cs.buf, make([]byte, n)...)
	if _, err := io.ReadFull(cr.r, cs.buf[start:]); err != nil {
		return m, false, err
	}
	if uint32(len(cs.buf)) < cs.length {
		return m, false, nil
	}
	m = rtmpMessage{typ: cs.typ, streamID: cs.streamID, ts: cs.ts, body: cs.buf}
	cs.buf = cs.buf[:0:0] // the caller owns the body now
	return m, true, nil
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

func appendUint24(b []byte, v uint32) []byte { return append(b, byte(v>>16), byte(v>>8), byte(v)) }

// appendChunks appends msg split into chunks of size: a type 0 header, then type 3
// continuations. Absolute timestamps in every message keep the writer stateless. It does not
// allocate once b has grown to a message's size.
func appendChunks(b []byte, size int, csid, typ byte, streamID, ts uint32, body []byte) []byte {
	extended := ts >= 0xffffff
	b = append(b, csid&0x3f)
	if extended {
		b = appendUint24(b, 0xffffff)
	} else {
		b = appendUint24(b, ts)
	}
	b = appendUint24(b, uint32(len(body)))
	b = append(b, typ)
	b = binary.LittleEndian.AppendUint32(b, streamID)
	if extended {
		b = binary.BigEndian.AppendUint32(b, ts)
	}
	for first := true; first || len(body) > 0; first = false {
		if !first {
			b = append(b, 0xc0|csid&0x3f)
			if extended {
				b = binary.BigEndian.AppendUint32(b, ts)
			}
		}
		n := min(len(body), size)
		b = append(b, body[:n]...)
		body = body[n:]
	}
	return b
}

// countingReader counts what the server sent, for acknowledgements.
type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// rtmpConn is a publishing RTMP client connection. During set-up one goroutine reads and
// writes it. Once media flows the Publisher's writer owns the socket's write side, and the
// reader's answers (acknowledgements, ping responses) wait in replies until the writer takes
// them between two messages: the reader never writes into the middle of a half-sent frame.
type rtmpConn struct {
	nc        net.Conn
	in        *countingReader
	cr        *chunkReader
	chunkSize int    // outgoing
	scratch   []byte // a set-up message being written
	streamID  uint32 // the publishing stream, from createStream

	window uint32 // the server's acknowledgement window, 0 = none
	acked  uint64 // bytes received when the last acknowledgement was sent

	mu      sync.Mutex
	queue   bool   // replies go to replies, not the socket
	replies []byte // chunked control messages for the writer
	wake    func() // tells the writer that replies are waiting
}

// rtmpTarget is the URL split the way RTMP servers expect: the first path segment is the
// application, the rest the stream name. A URL with one segment, rtmp://host/NAME, is how
// Flussonic documents publishing to stream NAME: the segment is then both the application and
// the stream name, as ffmpeg splits such a URL. The query (?password=...) stays on the stream
// name, where ffmpeg and OBS carry a stream key and Flussonic reads a stream's publish
// password ("password" in Flussonic's stream schema, openapi-demo
// openapi/flussonic/components/schemas/stream/stream_config_media.yml; publishing page:
// https://flussonic.com/doc/live-streaming/publishing-video-to-the-server/).
type rtmpTarget struct {
	addr, host string
	tls        bool
	app, tcURL string
	name       string
	user, pass string
	hasUser    bool
}

func parseRTMPTarget(u *url.URL) (rtmpTarget, error) {
	var t rtmpTarget
	switch u.Scheme {
	case "rtmp":
	case "rtmps":
		t.tls = true
	default:
		return t, fmt.Errorf("unsupported scheme: %s", u.Scheme)
	}
	t.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "1935"
		if t.tls {
			port = "443"
		}
	}
	t.addr = net.JoinHostPort(t.host, port)
	p := strings.TrimPrefix(u.EscapedPath(), "/")
	app, name, twoParts := strings.Cut(p, "/")
	if !twoParts {
		name = app
	}
	if app == "" || name == "" || strings.HasSuffix(name, "/") {
		return t, fmt.Errorf("RTMP URL path must be /NAME or /APP/NAME, not %q", u.Path)
	}
	t.app = app
	t.name = name
	if u.RawQuery != "" {
		t.name += "?" + u.RawQuery
	}
	t.tcURL = u.Scheme + "://" + u.Host + "/" + app
	if u.User != nil {
		t.hasUser = true
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
	}
	return t, nil
}

// rtmpError is a refusal by the server: an _error answer or an error-level onStatus.
type rtmpError struct {
	cmd, code, desc string
}

func (e *rtmpError) Error() string {
	s := "server refused " + e.cmd
	if e.code != "" {
		s += ": " + e.code
	}
	if e.desc != "" {
		s += " (" + e.desc + ")"
	}
	return s
}

// dialRTMP connects to the server and makes it accept a publish, following Adobe's
// authentication (authmod=adobe, as nginx-rtmp's and Wowza's auth modules and ffmpeg do it)
// when the server asks for it. The caller owns the returned connection.
func dialRTMP(ctx context.Context, u *url.URL) (*rtmpConn, error) {
	t, err := parseRTMPTarget(u)
	if err != nil {
		return nil, err
	}
	auth := ""
	for attempt := 0; ; attempt++ {
		c, err := dialRTMPOnce(ctx, t, auth)
		if err == nil {
			return c, nil
		}
		var re *rtmpError
		if !errors.As(err, &re) || re.cmd != "connect" || attempt >= 2 {
			return nil, err
		}
		next, aerr := adobeAuth(t, re.desc, auth)
		if aerr != nil {
			return nil, aerr
		}
		if next == "" {
			return nil, err
		}
		auth = next
	}
}

// adobeAuth returns the query to add to app and tcUrl for the next connect, "" if desc is
// not an authentication challenge.
func adobeAuth(t rtmpTarget, desc, prev string) (string, error) {
	switch {
	case strings.Contains(desc, "code=403 need auth; authmod=adobe"):
		if !t.hasUser {
			return "", errors.New("RTMP server requires credentials: put user:password@ in the publish URL")
		}
		if prev != "" {
			return "", errors.New("RTMP authentication failed")
		}
		return "authmod=adobe&user=" + url.QueryEscape(t.user), nil
	case strings.Contains(desc, "authmod=adobe") && strings.Contains(desc, "?reason=needauth"):
		if !strings.HasPrefix(prev, "authmod=adobe&user=") || strings.Contains(prev, "response=") {
			return "", errors.New("RTMP authentication failed")
		}
		_, q, _ := strings.Cut(desc, "?")
		vals := map[string]string{}
		for kv := range strings.SplitSeq(q, "&") {
			k, v, _ := strings.Cut(kv, "=")
			vals[k] = v
		}
		salt, challenge, opaque := vals["salt"], vals["challenge"], vals["opaque"]
		if salt == "" || challenge == "" {
			return "", fmt.Errorf("RTMP authentication: challenge without salt: %q", desc)
		}
		var nonce [4]byte
		_, _ = rand.Read(nonce[:])
		cchal := fmt.Sprintf("%08x", binary.BigEndian.Uint32(nonce[:]))
		h := md5.Sum([]byte(t.user + salt + t.pass))
		h = md5.Sum([]byte(base64.StdEncoding.EncodeToString(h[:]) + cond(opaque != "", opaque, challenge) + cchal))
		q = prev + "&challenge=" + cchal + "&response=" + base64.StdEncoding.EncodeToString(h[:])
		if opaque != "" {
			q += "&opaque=" + opaque
		}
		return q, nil
	}
	return "", nil
}

func cond(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func dialRTMPOnce(ctx context.Context, t rtmpTarget, auth string) (*rtmpConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if t.tls {
		tc := tls.Client(nc, &tls.Config{ServerName: t.host})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS: %w", err)
		}
		nc = tc
	}
	c := newRTMPConn(nc)
	if err := c.publish(t, auth); err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func newRTMPConn(nc net.Conn) *rtmpConn {
	in := &countingReader{r: nc}
	return &rtmpConn{
		nc:        nc,
		in:        in,
		cr:        newChunkReader(bufio.NewReaderSize(in, 4096)),
		chunkSize: 128,
	}
}

// handshake does the plain (non-digest) handshake: C0+C1, S0+S1+S2, C2 echoing S1.
func (c *rtmpConn) handshake() error {
	b := make([]byte, 1+rtmpHandshakeSize)
	b[0] = 3
	// C1: time 0, zero, then random bytes for the server to echo.
	if _, err := rand.Read(b[9:]); err != nil {
		return err
	}
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s := make([]byte, 1+2*rtmpHandshakeSize)
	if _, err := io.ReadFull(c.cr.r, s); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if s[0] != 3 {
		return fmt.Errorf("handshake: server speaks RTMP version %d, not 3", s[0])
	}
	// C2 echoes S1; S2 is not checked, as no client checks it.
	if _, err := c.nc.Write(s[1 : 1+rtmpHandshakeSize]); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	return nil
}

// writeMessage writes one message during set-up, or queues a reply once media flows.
func (c *rtmpConn) writeMessage(csid, typ byte, streamID, ts uint32, body []byte) error {
	c.mu.Lock()
	if c.queue {
		c.replies = appendChunks(c.replies, c.chunkSize, csid, typ, streamID, ts, body)
		wake := c.wake
		c.mu.Unlock()
		wake()
		return nil
	}
	c.mu.Unlock()
	c.scratch = appendChunks(c.scratch[:0], c.chunkSize, csid, typ, streamID, ts, body)
	_, err := c.nc.Write(c.scratch)
	return err
}

// takeReplies appends the queued replies to b; they go out ahead of the next media.
func (c *rtmpConn) takeReplies(b []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b = append(b, c.replies...)
	c.replies = c.replies[:0]
	return b
}

// writeCommand sends an AMF0 command: name, transaction id, then args.
func (c *rtmpConn) writeCommand(csid byte, streamID uint32, name string, txn int, args ...any) error {
	b := appendAMF(nil, name)
	b = appendAMF(b, txn)
	for _, a := range args {
		b = appendAMF(b, a)
	}
	return c.writeMessage(csid, rtmpCommandAMF0, streamID, 0, b)
}

func (c *rtmpConn) setChunkSize(n int) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n))
	if err := c.writeMessage(csidControl, rtmpSetChunkSize, 0, 0, b[:]); err != nil {
		return err
	}
	c.chunkSize = n
	return nil
}

// readMessage returns the next message that is not a control message; control messages are
// answered here. Only one goroutine may read.
func (c *rtmpConn) readMessage() (rtmpMessage, error) {
	for {
		m, err := c.cr.readMessage()
		if err != nil {
			return m, err
		}
		if err := c.ackIfDue(); err != nil {
			return m, err
		}
		switch m.typ {
		case rtmpSetChunkSize, rtmpAbort, rtmpAck, rtmpSetPeerBandwidth:
			continue
		case rtmpWindowAckSize:
			if len(m.body) >= 4 {
				c.window = binary.BigEndian.Uint32(m.body)
			}
			continue
		case rtmpUserControl:
			// A ping request (6) must be answered with a ping response (7) or some servers
			// drop the connection.
			if len(m.body) >= 6 && binary.BigEndian.Uint16(m.body) == 6 {
				resp := append([]byte{0, 7}, m.body[2:6]...)
				if err := c.writeMessage(csidControl, rtmpUserControl, 0, 0, resp); err != nil {
					return m, err
				}
			}
			continue
		}
		return m, nil
	}
}

func (c *rtmpConn) ackIfDue() error {
	if c.window == 0 || c.in.n-c.acked < uint64(c.window) {
		return nil
	}
	c.acked = c.in.n
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(c.in.n))
	return c.writeMessage(csidControl, rtmpAck, 0, 0, b[:])
}

// rtmpCommand is a decoded AMF0 command message.
type rtmpCommand struct {
	name string
	txn  float64
	args []any // after the transaction id; usually args[0] is the command object or null
}

// info returns the information object of _result/_error/onStatus (their second argument).
func (cmd rtmpCommand) info() amfObj {
	if len(cmd.args) < 2 {
		return nil
	}
	o, _ := cmd.args[1].(amfObj)
	return o
}

func parseCommand(body []byte) (rtmpCommand, error) {
	vals, err := decodeAMF(body)
	if err != nil {
		return rtmpCommand{}, err
	}
	if len(vals) == 0 {
		return rtmpCommand{}, errors.New("RTMP: empty command")
	}
	name, ok := vals[0].(string)
	if !ok {
		return rtmpCommand{}, errors.New("RTMP: command without a name")
	}
	// ffmpeg's server sends some commands without a transaction id.
	cmd := rtmpCommand{name: name}
	if len(vals) > 1 {
		cmd.txn, _ = vals[1].(float64)
		cmd.args = vals[2:]
	}
	return cmd, nil
}

// waitCommand reads until an answer to txn (or, for onStatus, any onStatus) arrives.
func (c *rtmpConn) waitCommand(cmdName string, txn int, onStatus bool) (rtmpCommand, error) {
	for {
		m, err := c.readMessage()
		if err != nil {
			return rtmpCommand{}, fmt.Errorf("waiting for the answer to %s: %w", cmdName, err)
		}
		if m.typ != rtmpCommandAMF0 {
			continue
		}
		cmd, err := parseCommand(m.body)
		if err != nil {
			return rtmpCommand{}, fmt.Errorf("answer to %s: %w", cmdName, err)
		}
		switch {
		case onStatus && cmd.name == "onStatus":
			info := cmd.info()
			if info.str("level") == "error" {
				return cmd, &rtmpError{cmdName, info.str("code"), info.str("description")}
			}
			return cmd, nil
		case (cmd.name == "_result" || cmd.name == "_error") && int(cmd.txn) == txn:
			if cmd.name == "_error" {
				info := cmd.info()
				return cmd, &rtmpError{cmdName, info.str("code"), info.str("description")}
			}
			return cmd, nil
		}
		// _result/_error of releaseStream and FCPublish, onBWDone, onFCPublish: not needed.
	}
}

// publish runs the exchange ffmpeg runs before sending media: connect, releaseStream,
// FCPublish, createStream, publish.
func (c *rtmpConn) publish(t rtmpTarget, auth string) error {
	if err := c.handshake(); err != nil {
		return err
	}
	if err := c.setChunkSize(rtmpOutChunkSize); err != nil {
		return err
	}
	app, tcURL := t.app, t.tcURL
	if auth != "" {
		app += "?" + auth
		tcURL += "?" + auth
	}
	connect := amfObj{
		{"app", app},
		{"type", "nonprivate"},
		{"flashVer", "FMLE/3.0 (compatible; camgate)"},
		{"tcUrl", tcURL},
	}
	if err := c.writeCommand(csidCommand, 0, "connect", 1, connect); err != nil {
		return err
	}
	if _, err := c.waitCommand("connect", 1, false); err != nil {
		return err
	}
	if err := c.writeCommand(csidCommand, 0, "releaseStream", 2, nil, t.name); err != nil {
		return err
	}
	if err := c.writeCommand(csidCommand, 0, "FCPublish", 3, nil, t.name); err != nil {
		return err
	}
	if err := c.writeCommand(csidCommand, 0, "createStream", 4, nil); err != nil {
		return err
	}
	res, err := c.waitCommand("createStream", 4, false)
	if err != nil {
		return err
	}
	if len(res.args) < 2 {
		return errors.New("createStream answer has no stream id")
	}
	id, ok := res.args[1].(float64)
	if !ok || id < 0 || id > 1<<24 {
		return fmt.Errorf("createStream answer has no valid stream id: %v", res.args[1])
	}
	c.streamID = uint32(id)
	if err := c.writeCommand(csidData, c.streamID, "publish", 5, nil, t.name, "live"); err != nil {
		return err
	}
	if _, err := c.waitCommand("publish", 5, true); err != nil {
		return err
	}
	return nil
}

// writeMedia sends one audio, video or data message on the publishing stream. body is copied
// into the connection's buffer before writeMedia returns.
func (c *rtmpConn) writeMedia(typ byte, ts uint32, body []byte) error {
	csid := byte(csidData)
	switch typ {
	case rtmpAudio:
		csid = csidAudio
	case rtmpVideo:
		csid = csidVideo
	}
	return c.writeMessage(csid, typ, c.streamID, ts, body)
}

func (c *rtmpConn) Close() error { return c.nc.Close() }
