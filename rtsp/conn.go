package rtsp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
)

// defaultSessionTimeout is RFC 2326's, for servers that do not state theirs.
const defaultSessionTimeout = 60 * time.Second

// rtspConn is the control side of one RTSP connection with TCP interleaving, shared by the
// camera session (player.go) and the upstream session (publisher.go): requests with CSeq,
// Session and one Basic/Digest challenge answered, answers read past interleaved frames.
// It is used from one goroutine at a time.
type rtspConn struct {
	conn net.Conn
	rd   *connReader
	br   *bufio.Reader
	// out is what is waiting to be written, in order: requests, and media for a publisher.
	// It is written with flush, or tryFlush where the connection allows it.
	out     []byte
	w       deadlineWriter
	raw     syscall.RawConn // nil for TLS: no write without blocking
	url     *base.URL       // without credentials
	user    string
	pass    string
	hasUser bool
	// refuseBasic keeps the password from a Basic challenge: the camera side sets it unless
	// the connection is TLS or the camera is marked auth: basic (see cameraAuth). The
	// upstream side leaves it unset: its password is the server's to ask for.
	refuseBasic bool
	sender      *auth.Sender
	cseq        int
	session     string
	timeout     time.Duration
	// keepAlive is how often the session must be refreshed, from the server's session timeout.
	keepAlive time.Duration
}

// errWouldBlock is what a connReader that may not wait returns when nothing is there to read.
var errWouldBlock = errors.New("no data yet")

// connReader reads conn, waiting for data or, when block is false and the connection allows
// it, not: then it takes what the socket holds and returns errWouldBlock if that is nothing.
// bufio.Reader passes that error on and keeps what it has buffered. Over plain TCP both read
// through raw with readNow, so that no read enters the scheduler's system-call state; a waiting
// read tries first and waits only on EAGAIN, as net.Conn.Read does, because the poller forgets
// readiness it saw before the wait began.
type connReader struct {
	conn  net.Conn
	raw   syscall.RawConn // nil for TLS: always waits, through conn
	block bool
	// drained is set when the last read took less than it could or nothing: the socket is
	// (very probably) empty, and reading again now would only cost a system call.
	drained bool
	got     int64 // bytes read so far
}

func (r *connReader) Read(b []byte) (int, error) {
	if r.raw == nil {
		n, err := r.conn.Read(b)
		r.drained = n < len(b)
		r.got += int64(n)
		return n, err
	}
	var n int
	var errno syscall.Errno
	if err := r.raw.Read(func(fd uintptr) bool {
		for {
			n, errno = readNow(int(fd), b)
			if errno != syscall.EINTR {
				break
			}
		}
		// Waiting, EAGAIN waits for readiness within the read deadline; not waiting, the
		// Pacer says when to look again.
		return !r.block || errno != syscall.EAGAIN
	}); err != nil {
		return 0, err
	}
	switch {
	case errno == syscall.EAGAIN:
		r.drained = true
		return 0, errWouldBlock
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	r.drained = n < len(b)
	r.got += int64(n)
	return n, nil
}

// deadlineWriter gives every write on conn its own deadline, so that a stalled peer ends the
// session instead of blocking the relay forever.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.conn.Write(p)
}

// dialRTSP connects to u (rtsp or rtsps) within timeout. The connection's buffers are the
// caller's choice: a camera session reads a lot, an upstream session writes a lot.
func dialRTSP(ctx context.Context, u *url.URL, timeout time.Duration, readBuf, writeBuf int) (*rtspConn, error) {
	host := u.Host
	if u.Port() == "" {
		port := "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, &stepError{"connect", err}
	}
	if u.Scheme == "rtsps" {
		conn = tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
	}
	clean := *u
	clean.User = nil
	rd := &connReader{conn: conn, block: true}
	c := &rtspConn{
		conn:      conn,
		rd:        rd,
		br:        bufio.NewReaderSize(rd, readBuf),
		out:       make([]byte, 0, writeBuf),
		w:         deadlineWriter{conn, timeout},
		url:       (*base.URL)(&clean),
		timeout:   timeout,
		keepAlive: defaultSessionTimeout / 2,
	}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
		rd.raw = c.raw
	}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		c.hasUser = true
	}
	return c, nil
}

// setUp runs handshake on the connection, closing it if ctx ends meanwhile (closing is what
// unblocks a handshake step) or the handshake fails.
func (c *rtspConn) setUp(ctx context.Context, handshake func() error) error {
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	if err := handshake(); err != nil {
		c.conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// do sends one request and reads its answer, answering one authentication challenge. Any
// status but 200 is an error (liberrors.ErrClientBadStatusCode), except the redirects that
// the caller asked to see. A challenge answered and refused again is a *PasswordRefusedError.
func (c *rtspConn) do(method base.Method, u *base.URL, h base.Header, body []byte) (*base.Response, error) {
	res, err := c.roundTrip(method, u, h, body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == base.StatusUnauthorized && c.hasUser && c.sender == nil {
		if err := c.authenticate(res.Header["WWW-Authenticate"]); err != nil {
			return nil, err
		}
		if res, err = c.roundTrip(method, u, h, body); err != nil {
			return nil, err
		}
	}
	if c.sender != nil && (res.StatusCode == base.StatusUnauthorized || res.StatusCode == base.StatusForbidden) {
		return res, &PasswordRefusedError{User: c.user, Code: int(res.StatusCode), Message: res.StatusMessage}
	}
	if res.StatusCode != base.StatusOK {
		return res, liberrors.ErrClientBadStatusCode{Code: res.StatusCode, Message: res.StatusMessage}
	}
	return res, nil
}

// authenticate prepares the answer to a challenge: Digest whenever the camera offers it, Basic
// only where refuseBasic allows (Basic puts the password on the wire as it is).
func (c *rtspConn) authenticate(wwwAuth base.HeaderValue) error {
	if c.refuseBasic && !offersDigest(wwwAuth) {
		return ErrBasicRefused
	}
	sender := &auth.Sender{WWWAuth: wwwAuth, User: c.user, Pass: c.pass}
	if err := sender.Initialize(); err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	c.sender = sender
	return nil
}

// offersDigest reports whether a WWW-Authenticate header offers Digest.
func offersDigest(wwwAuth base.HeaderValue) bool {
	for _, v := range wwwAuth {
		var a headers.Authenticate
		if a.Unmarshal(base.HeaderValue{v}) == nil && a.Method == headers.AuthMethodDigest {
			return true
		}
	}
	return false
}

// ErrBasicRefused is the error of a camera that asks for Basic authentication over plain
// rtsp:// when it is not marked for it: the password was not sent.
var ErrBasicRefused = errors.New("the camera asks for Basic authentication, which sends the password " +
	"in cleartext over rtsp://: not sent; use rtsps://, or mark the camera auth: basic to allow it")

// PasswordRefusedError is a camera's or server's 401 or 403 to a request that carried
// credentials. Cameras lock an account after a few of these, so a Relay retries it slowly.
type PasswordRefusedError struct {
	User    string
	Code    int
	Message string
}

func (e *PasswordRefusedError) Error() string {
	return fmt.Sprintf("password refused for user %q (%d %s)", e.User, e.Code, e.Message)
}

func (c *rtspConn) roundTrip(method base.Method, u *base.URL, h base.Header, body []byte) (*base.Response, error) {
	if err := c.writeRequest(method, u, h, body); err != nil {
		return nil, err
	}
	if err := c.flush(); err != nil {
		return nil, err
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == base.InterleavedFrameMagicByte {
			if err := c.discardFrame(); err != nil {
				return nil, err
			}
			continue
		}
		var res base.Response
		if err := res.Unmarshal(c.br); err != nil {
			return nil, err
		}
		if cs, ok := res.Header["CSeq"]; ok && len(cs) == 1 && cs[0] != strconv.Itoa(c.cseq) {
			continue // the answer to an earlier keep-alive
		}
		return &res, nil
	}
}

// flush writes out whole, within the write timeout.
func (c *rtspConn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.w.Write(c.out)
	c.out = c.out[:0]
	return err
}

// tryFlush writes as much of out as the socket takes without waiting and reports whether all
// of it went. What is left stays in out, for flush. A write error is left for flush to meet.
func (c *rtspConn) tryFlush() bool {
	if len(c.out) == 0 {
		return true
	}
	if c.raw == nil {
		return false
	}
	n := 0
	// An error here means the socket is closed: nothing was written, and the next flush says so.
	_ = c.raw.Write(func(fd uintptr) bool {
		for n < len(c.out) {
			m, errno := writeNow(int(fd), c.out[n:])
			if errno == syscall.EINTR {
				continue
			}
			if errno != 0 || m <= 0 {
				break
			}
			n += m
		}
		return true // never wait: that is flush's job
	})
	c.out = c.out[:copy(c.out, c.out[n:])]
	return len(c.out) == 0
}

// writeRequest buffers a request; the caller flushes.
func (c *rtspConn) writeRequest(method base.Method, u *base.URL, h base.Header, body []byte) error {
	req := &base.Request{Method: method, URL: u, Header: base.Header{}, Body: body}
	for k, v := range h {
		req.Header[k] = v
	}
	c.cseq++
	req.Header["CSeq"] = base.HeaderValue{strconv.Itoa(c.cseq)}
	req.Header["User-Agent"] = base.HeaderValue{"camgate"}
	if c.session != "" {
		req.Header["Session"] = base.HeaderValue{c.session}
	}
	if c.sender != nil {
		c.sender.AddAuthorization(req)
	}
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	c.out = append(c.out, b...)
	return nil
}

// takeSession remembers the session a SETUP answer names and the keep-alive period its
// timeout implies.
func (c *rtspConn) takeSession(res *base.Response) error {
	var s headers.Session
	if err := s.Unmarshal(res.Header["Session"]); err != nil {
		return fmt.Errorf("session header: %w", err)
	}
	c.session = s.Session
	if s.Timeout != nil && *s.Timeout > 0 {
		c.keepAlive = max(time.Duration(*s.Timeout)*time.Second/2, time.Second)
	}
	return nil
}

// readMessage reads one RTSP message that is not an interleaved frame during a session:
// answers and server requests alike are read whole and returned as a response or nil.
func (c *rtspConn) readMessage() (*base.Response, error) {
	if b, err := c.br.Peek(5); err == nil && string(b) != "RTSP/" {
		// A request from the server (SET_PARAMETER, ANNOUNCE and the like): nothing a
		// relay needs to act on.
		var req base.Request
		return nil, req.Unmarshal(c.br)
	}
	var res base.Response
	if err := res.Unmarshal(c.br); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *rtspConn) discardFrame() error {
	var h [4]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return err
	}
	_, err := c.br.Discard(int(binary.BigEndian.Uint16(h[2:])))
	return err
}

func (c *rtspConn) close() error { return c.conn.Close() }
