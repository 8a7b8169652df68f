package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/camgate/camgate/internal/lan"
)

// Defaults for zero Config fields.
const (
	DefaultAddr            = ":1025"
	DefaultMaxMessageBytes = 10 << 20
	DefaultMaxSessions     = 100
	DefaultCommandTimeout  = 30 * time.Second
	DefaultDataTimeout     = 5 * time.Minute
	DefaultSessionTimeout  = 10 * time.Minute
	DefaultHandlerTimeout  = 30 * time.Second
	maxRecipients          = 32
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	Addr string // listen address, e.g. ":1025"; port 0 picks a free one

	// Username, when set, makes AUTH (PLAIN or LOGIN) required before MAIL. When empty, AUTH is
	// still offered and any credentials pass: many cameras cannot send without logging in.
	Username, Password string
	// AuthOptional lets a client send without AUTH although Username is set: a login that is
	// tried must still be right (535 otherwise), and only a mail that logged in comes with
	// Alarm.Authenticated. It serves a gateway-generated password that cameras may not know yet.
	AuthOptional bool

	MaxMessageBytes int64 // larger mails are refused with 552
	// MaxSessions bounds concurrent sessions. When full, a new connection evicts the session that
	// has gone longest without completing a command, so trickling clients cannot lock cameras out.
	MaxSessions int
	// MemoryBudget bounds, in bytes, what open sessions and the mails being read hold together
	// (default DefaultMemoryBudget). When it is spent, sessions staler than the one asking are
	// closed to make room; a new connection that still finds none gets 421 and is closed, a mail
	// whose headers find none gets 452, and a snapshot that finds none is dropped while its alarm
	// still counts.
	MemoryBudget int64

	Policy *lan.Policy // who may connect; nil = LAN only
	Logger *slog.Logger
	Domain string // name in the greeting; default "camgate"

	CommandTimeout time.Duration // to send one command line
	DataTimeout    time.Duration // to send one mail's content
	SessionTimeout time.Duration // lifetime of a session, however busy
	HandlerTimeout time.Duration // the Handler's context deadline
}

// Handler receives each accepted mail, also those without motion (the snapshot may still be
// wanted). It runs on the session's goroutine before the reply: nil means the alarm is stored and
// the camera gets 250; an error means it is not, and the camera gets 451 (try again later), so
// that a mail is never acknowledged and then lost. It should hand the alarm off rather than do
// slow work; ctx ends after Config.HandlerTimeout or when the server stops.
type Handler func(ctx context.Context, a Alarm) error

// Stats are the server's counters since it was created.
type Stats struct {
	Sessions     int    // open now
	Accepted     uint64 // connections admitted by the LAN policy
	Denied       uint64 // connections refused by the LAN policy, closed without a byte
	Evicted      uint64 // sessions closed to make room for a new one
	Mails        uint64 // mails handed to the Handler
	TooLarge     uint64 // mails refused with 552
	Deferred     uint64 // mails the Handler could not store, answered 451
	AuthFailures uint64
	// AuthThrottled counts AUTH attempts refused (454) unexamined: their address had too many
	// recent failures.
	AuthThrottled uint64
	// OverBudget counts connections refused (421) and mails refused (452) because the memory
	// budget was spent even after evicting stale sessions; SnapshotsDropped, snapshots not kept
	// for it; MemoryInUse is the budget's bytes held now.
	OverBudget, SnapshotsDropped uint64
	MemoryInUse                  int64
}

// Server is the SMTP alarm server.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger

	mu       sync.Mutex
	ln       *lan.Listener
	sessions map[*sessionConn]struct{}

	handlerCtx context.Context // set by Run before any session starts
	inData     sync.WaitGroup
	budget     *memBudget
	throttle   *authThrottle

	accepted, evicted, mails, tooLarge, deferred, authFailures atomic.Uint64
	overBudget, snapshotsDropped, authThrottled                atomic.Uint64
}

// NewServer checks cfg and fills in its defaults. It does not listen yet.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("smtp: nil Handler")
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("smtp: password set without a username")
	}
	if cfg.MaxMessageBytes < 0 || cfg.MaxSessions < 0 || cfg.MemoryBudget < 0 {
		return nil, errors.New("smtp: negative max_message_bytes, max sessions or memory budget")
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = DefaultMemoryBudget
	}
	if cfg.MemoryBudget < sessionCost+mailCost {
		return nil, fmt.Errorf("smtp: a memory budget of %d bytes cannot hold one session with its mail (%d)",
			cfg.MemoryBudget, sessionCost+mailCost)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Domain == "" {
		cfg.Domain = "camgate"
	}
	setDefault(&cfg.CommandTimeout, DefaultCommandTimeout)
	setDefault(&cfg.DataTimeout, DefaultDataTimeout)
	setDefault(&cfg.SessionTimeout, DefaultSessionTimeout)
	setDefault(&cfg.HandlerTimeout, DefaultHandlerTimeout)
	if cfg.Policy == nil {
		p, err := lan.NewPolicy(nil)
		if err != nil {
			return nil, fmt.Errorf("smtp: %w", err)
		}
		cfg.Policy = p
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		cfg:      cfg,
		handler:  h,
		log:      log.With("component", "smtp"),
		sessions: make(map[*sessionConn]struct{}),
		budget:   &memBudget{max: cfg.MemoryBudget},
		throttle: newAuthThrottle(time.Now),
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Listen binds Config.Addr. Run calls it when it has not been called; calling it first lets the
// caller learn Addr (with port 0) before serving.
func (s *Server) Listen(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := lan.Listen(ctx, "tcp", s.cfg.Addr, s.cfg.Policy, s.log)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr returns the listening address, nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Run serves until ctx ends, then closes the listener and every session and waits for mails
// being handled. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(ctx); err != nil {
		return err
	}
	s.handlerCtx = ctx

	gs := gosmtp.NewServer(backend{s})
	gs.Domain = s.cfg.Domain
	gs.MaxMessageBytes = s.cfg.MaxMessageBytes
	gs.MaxRecipients = maxRecipients
	gs.MaxLineLength = 0 // sessionConn bounds command lines; mail lines are unbounded
	gs.AllowInsecureAuth = true
	gs.ReadTimeout = s.cfg.CommandTimeout
	gs.WriteTimeout = s.cfg.CommandTimeout
	gs.ErrorLog = errorLog{s.log}

	served := make(chan error, 1)
	go func() { served <- gs.Serve(&sessionListener{Listener: s.ln, srv: s}) }()
	s.log.Info("SMTP alarm server listening", "addr", s.ln.Addr().String(),
		"auth_required", s.cfg.Username != "" && !s.cfg.AuthOptional)

	select {
	case <-ctx.Done():
		s.stop(gs)
		if err := <-served; err != nil {
			s.log.Debug("SMTP server stopped", "err", err)
		}
		s.inData.Wait()
		return nil
	case err := <-served:
		s.stop(gs)
		s.inData.Wait()
		return fmt.Errorf("smtp: serve: %w", err)
	}
}

// stop closes go-smtp, the listener and every session. go-smtp alone is not enough: its Close
// closes only the listeners its Serve has registered, and a Serve goroutine that starts after
// Close would accept forever (seen when a daemon stops right after it started).
func (s *Server) stop(gs *gosmtp.Server) {
	_ = gs.Close()
	_ = s.ln.Close()
	s.mu.Lock()
	open := make([]*sessionConn, 0, len(s.sessions))
	for sc := range s.sessions {
		open = append(open, sc)
	}
	s.mu.Unlock()
	for _, sc := range open {
		_ = sc.Close()
	}
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.sessions)
	var denied uint64
	if s.ln != nil {
		denied = s.ln.Denied()
	}
	s.mu.Unlock()
	return Stats{
		Sessions:     n,
		Accepted:     s.accepted.Load(),
		Denied:       denied,
		Evicted:      s.evicted.Load(),
		Mails:        s.mails.Load(),
		TooLarge:     s.tooLarge.Load(),
		Deferred:     s.deferred.Load(),
		AuthFailures: s.authFailures.Load(),

		AuthThrottled: s.authThrottled.Load(),

		OverBudget:       s.overBudget.Load(),
		SnapshotsDropped: s.snapshotsDropped.Load(),
		MemoryInUse:      s.budget.inUse(),
	}
}

// admit registers a new session and charges it to the memory budget. When all session slots are
// taken, or the budget is spent, it closes the sessions that have gone longest without completing
// a command or a mail; if that is not enough it answers 421, closes c and reports false.
func (s *Server) admit(c *sessionConn) bool {
	s.accepted.Add(1)
	s.mu.Lock()
	full := len(s.sessions) >= s.cfg.MaxSessions
	s.sessions[c] = struct{}{}
	s.mu.Unlock()
	if full && !s.evictStalerThan(c, false) {
		s.refuse(c, "too many sessions")
		return false
	}
	if !c.reserveOrEvict(sessionCost) {
		s.refuse(c, "memory budget spent")
		return false
	}
	return true
}

// refuse tells a new connection the gateway is busy (RFC 5321 §3.8: 421 then close).
func (s *Server) refuse(c *sessionConn, why string) {
	s.overBudget.Add(1)
	s.log.Debug("connection refused: "+why, "remote", c.RemoteAddr().String())
	// A fresh connection's socket buffer takes the line at once; the deadline only guards.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c.Conn, "421 4.3.2 "+s.cfg.Domain+" busy, try again later\r\n")
	_ = c.Close()
}

// evictStalerThan closes the session that has gone longest without completing a command or a
// mail, if that was longer than c has, and the Handler does not have its mail; with mailOnly
// (to make room in the memory budget) only among sessions that hold more than their session.
// It reports whether it closed one.
func (s *Server) evictStalerThan(c *sessionConn, mailOnly bool) bool {
	var victim *sessionConn
	s.mu.Lock()
	oldest := c.progress.Load()
	for sc := range s.sessions {
		if p := sc.progress.Load(); sc != c && p < oldest && !sc.handling.Load() &&
			(!mailOnly || sc.heldBytes() > sessionCost) {
			oldest, victim = p, sc
		}
	}
	delete(s.sessions, victim)
	s.mu.Unlock()
	if victim == nil {
		return false
	}
	s.evicted.Add(1)
	s.log.Debug("session evicted to make room", "remote", victim.RemoteAddr().String(),
		"idle", time.Since(time.Unix(0, victim.progress.Load())).Round(time.Millisecond),
		"held_bytes", victim.heldBytes())
	_ = victim.Close()
	return true
}

func (s *Server) release(c *sessionConn) {
	s.mu.Lock()
	delete(s.sessions, c)
	s.mu.Unlock()
}

type sessionListener struct {
	net.Listener
	srv *Server
}

// Accept returns the next connection admitted; those refused for want of room are answered
// and closed here, so go-smtp never sees them.
func (l *sessionListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if sc := newSessionConn(c, l.srv, time.Now()); l.srv.admit(sc) {
			return sc, nil
		}
	}
}

// errOverBudget tells a camera to send its mail again later (RFC 5321 §4.2.3, RFC 3463 4.3.1).
var errOverBudget = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1},
	Message: "Insufficient system storage, try again later"}

type backend struct{ srv *Server }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	sess := &session{srv: b.srv}
	sess.conn, _ = c.Conn().(*sessionConn)
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		sess.remote = ap.Addr().Unmap()
	}
	return sess, nil
}

// session is one SMTP conversation; go-smtp calls it from the connection's goroutine only.
type session struct {
	srv    *Server
	conn   *sessionConn // nil only when go-smtp is given another listener (never in Run)
	remote netip.Addr
	authed bool
	from   string
	rcpts  []string
}

var _ gosmtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, loginMechanism} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.srv.throttle.allowed(s.remote) {
		s.srv.authThrottled.Add(1)
		return nil, errAuthThrottled
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.login("", "")
			}
			return s.login(username, password)
		}), nil
	case loginMechanism:
		return &loginServer{authenticate: s.login}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (s *session) login(username, password string) error {
	cfg := s.srv.cfg
	if cfg.Username == "" {
		s.authed = true
		return nil
	}
	// Counted before it is looked at: sessions of one client that all passed Auth's check
	// before any failed still get no more guesses judged than the limit.
	try, ok := s.srv.throttle.attempt(s.remote)
	if !ok {
		s.srv.authThrottled.Add(1)
		return errAuthThrottled
	}
	if credentialsMatch(cfg.Username, cfg.Password, username, password) {
		s.srv.throttle.forgive(try)
		s.authed = true
		return nil
	}
	s.srv.authFailures.Add(1)
	// One line when a client starts failing and one when it is throttled: a camera with a
	// wrong password shows in the log, a guesser does not fill it.
	switch try.n {
	case 1:
		s.srv.log.Warn("SMTP authentication failed", "remote", s.remote.String(), "username", username)
	case authFailuresAllowed:
		s.srv.log.Warn("SMTP authentication failing repeatedly: address throttled", "remote", s.remote.String(),
			"failures", try.n, "window", authWindow)
	default:
		s.srv.log.Debug("SMTP authentication failed", "remote", s.remote.String(), "failures", try.n)
	}
	return gosmtp.ErrAuthFailed
}

func (s *session) authRequired() bool {
	return s.srv.cfg.Username != "" && !s.srv.cfg.AuthOptional && !s.authed
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.authRequired() {
		return gosmtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.authRequired() {
		return gosmtp.ErrAuthRequired
	}
	local := to
	if i := strings.LastIndexByte(to, '@'); i >= 0 {
		local = to[:i]
	}
	s.rcpts = append(s.rcpts, local)
	return nil
}

func (s *session) Data(r io.Reader) error {
	srv := s.srv
	srv.inData.Add(1)
	defer srv.inData.Done()

	var g *grant
	if s.conn != nil {
		g = &grant{conn: s.conn}
		defer func() { g.release(g.held) }()
		if !g.reserve(mailCost) {
			srv.overBudget.Add(1)
			srv.log.Debug("alarm mail refused: memory budget spent", "remote", s.remote.String())
			return errOverBudget
		}
	}
	a, out, err := parseMail(r, srv.cfg.MaxMessageBytes, g)
	if out.snapshotDropped && s.conn != nil && !s.conn.isClosed() { // a session pushed out lost everything anyway
		srv.snapshotsDropped.Add(1)
		srv.log.Warn("alarm snapshot dropped: memory budget spent", "remote", s.remote.String())
	}
	switch {
	case out.noMemory && !errors.Is(err, ErrMessageTooLarge):
		srv.overBudget.Add(1)
		srv.log.Warn("alarm mail refused: memory budget spent", "remote", s.remote.String())
		return errOverBudget
	case err == nil:
	case errors.Is(err, ErrMessageTooLarge) || errors.Is(err, gosmtp.ErrDataTooLarge):
		srv.tooLarge.Add(1)
		srv.log.Warn("alarm mail refused: too large", "remote", s.remote.String(), "max_bytes", srv.cfg.MaxMessageBytes)
		return gosmtp.ErrDataTooLarge
	case errors.Is(err, ErrMalformed):
		// A camera's odd MIME still reports an event: deliver what was understood.
		srv.log.Warn("alarm mail partly malformed", "remote", s.remote.String(), "err", err)
	default:
		return fmt.Errorf("reading mail: %w", err)
	}
	a.Received = time.Now()
	a.Recipients = append([]string(nil), s.rcpts...)
	if s.from != "" {
		a.From = s.from
	}
	a.RemoteIP = s.remote
	a.Authenticated = s.authed && srv.cfg.Username != ""

	srv.mails.Add(1)
	srv.log.Debug("alarm mail", "remote", s.remote.String(), "recipients", a.Recipients,
		"subject", a.Subject, "motion", a.Motion, "snapshot_bytes", len(a.Snapshot))
	ctx, cancel := context.WithTimeout(srv.handlerCtx, srv.cfg.HandlerTimeout)
	defer cancel()
	if s.conn != nil {
		s.conn.handling.Store(true)
		defer s.conn.handling.Store(false)
	}
	if err := srv.handler(ctx, a); err != nil {
		srv.deferred.Add(1)
		srv.log.Warn("alarm mail not stored: asking the camera to send it again", "remote", s.remote.String(), "err", err)
		return errNotStored
	}
	return nil
}

// errNotStored is the 451 of a mail the handler could not keep: a transient failure, so the
// camera (like any MTA) queues the mail and sends it again.
var errNotStored = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
	Message: "Alarm not stored, try again later"}

func (s *session) Reset() {
	s.from, s.rcpts = "", nil
}

func (s *session) Logout() error { return nil }

// errorLog routes go-smtp's internal log lines (mostly broken connections, which a LAN full of
// cameras produces routinely) to debug level, and panics it recovered to error level.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l errorLog) print(msg string) {
	if strings.Contains(msg, "panic") {
		l.log.Error("smtp library: " + msg)
		return
	}
	l.log.Debug("smtp library: " + msg)
}
