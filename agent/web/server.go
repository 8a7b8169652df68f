package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/lan"
)

//go:embed static
var staticFiles embed.FS

const (
	// maxBodyBytes bounds every request body; the largest legitimate one, a connection update
	// with a few event sinks, is far smaller.
	maxBodyBytes = 64 << 10
	// testStreamTimeout bounds one stream test; `camgate probe` needs a few seconds of media.
	testStreamTimeout = 20 * time.Second
	// maxTestStreams bounds how many stream tests run at once: each holds an RTSP session.
	maxTestStreams = 2
	// backendTimeout bounds every other backend call, so a stuck part of the agent cannot pile
	// up goroutines behind the page's polling.
	backendTimeout  = 10 * time.Second
	shutdownTimeout = 5 * time.Second

	sessionCookie = "camgate_session"
	csrfHeader    = "X-CSRF-Token"
)

// Config configures a Server.
type Config struct {
	Addr     string   // web.listen, e.g. ":8080"
	Allow    []string // web.allow: client CIDRs; empty = LAN only (see internal/lan)
	PairCode string   // the setup code that logs in, when Code is nil
	// Code, when set, returns the setup code now; it is asked at every login and session
	// check, so it must be cheap. A different code than before ends every session (camgate
	// pair-code --rotate); an error refuses logins and sessions until it reads again.
	Code    func() (string, error)
	Backend Backend
	// Metrics writes Prometheus text for GET /metrics (e.g. metrics.WritePrometheus); nil
	// serves only the page's own counters.
	Metrics func(w io.Writer)
	// Notify, when set, receives cameras' ONVIF event notifications: POSTs to /onvif/notify/…,
	// without a session (a camera cannot log in). The handler must check the unguessable token
	// in the path it gave the camera; the LAN policy applies as to everything else.
	Notify  http.Handler
	Version string
	Logger  *slog.Logger // nil: slog.Default()
}

// Server is the pairing page and its JSON API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	policy   *lan.Policy
	handler  http.Handler
	sessions *sessions
	limiter  *loginLimiter
	tests    chan struct{}     // stream test slots
	static   fs.FS             // the page's files
	pages    map[string][]byte // index.html rendered per language; read-only after NewServer
	now      func() time.Time

	loginFailed  atomic.Uint64          // wrong codes
	loginRefused atomic.Uint64          // attempts refused by the rate limit
	codeErr      atomic.Pointer[string] // the last error reading the setup code, logged once

	mu sync.Mutex
	ln *lan.Listener
}

// NewServer checks cfg and builds the server; it does not listen yet.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("web: no backend")
	}
	if cfg.Code == nil {
		if normalizeCode(cfg.PairCode) == "" {
			return nil, errors.New("web: empty setup code")
		}
		fixed := cfg.PairCode
		cfg.Code = func() (string, error) { return fixed, nil }
	}
	policy, err := lan.NewPolicy(cfg.Allow)
	if err != nil {
		return nil, fmt.Errorf("web: allow: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	pages, err := renderPages(static)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{
		static:   static,
		pages:    pages,
		cfg:      cfg,
		log:      log,
		policy:   policy,
		sessions: newSessions(),
		limiter:  newLoginLimiter(),
		tests:    make(chan struct{}, maxTestStreams),
		now:      time.Now,
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the page and API without the LAN policy (which acts on connections); for
// tests and for embedding behind a listener that already applies it.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds Config.Addr (port 0 picks a free port) behind the LAN policy.
func (s *Server) Listen(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("web: already listening")
	}
	ln, err := lan.Listen(ctx, "tcp", s.cfg.Addr, s.policy, s.log)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Run serves until ctx ends, listening first if Listen was not called, then shuts down
// gracefully. It returns nil when ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if s.Addr() == nil {
		if err := s.Listen(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      testStreamTimeout + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.log.Info("pairing page listening", "addr", ln.Addr().String(), "lan_only", s.policy.LANOnly())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("web: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-done //nolint:errcheck // Serve's ErrServerClosed: the shutdown asked for it
	return nil
}

// DeniedConnections returns how many connections the LAN policy closed unanswered.
func (s *Server) DeniedConnections() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return 0
	}
	return s.ln.Denied()
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.requireSession(h)) }

	mux.HandleFunc("POST /api/login", s.login)
	mux.HandleFunc("GET /api/session", s.session)
	api("POST /api/logout", s.logout)
	api("GET /api/status", s.status)
	api("GET /api/cameras", s.cameras)
	api("POST /api/cameras", s.addCamera)
	api("PATCH /api/cameras/{camera_id}", s.updateCamera)
	api("DELETE /api/cameras/{camera_id}", s.removeCamera)
	api("GET /api/cameras/{camera_id}/snapshot.jpg", s.snapshot)
	api("POST /api/discover", s.discover)
	api("POST /api/test-stream", s.testStream)
	api("GET /api/connection", s.connection)
	api("PUT /api/connection", s.setConnection)
	api("GET /api/wifi-qr.png", s.wifiQR)
	api("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeCoded(w, http.StatusNotFound, CodeNoSuchEndpoint, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics", s.metrics)
	if s.cfg.Notify != nil {
		mux.Handle("POST /onvif/notify/", http.MaxBytesHandler(s.cfg.Notify, 1<<20))
	}

	files := http.FileServerFS(s.static)
	// "/" rather than "GET /": the latter would conflict with the "/api/" catch-all.
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			s.index(w, r)
			return
		}
		// Revalidate every time: the files change with the firmware, and they are small.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeCoded(w, http.StatusForbidden, CodeCrossOrigin, "cross-origin request refused")
	}))
	return securityHeaders(localHostOnly(cop.Handler(mux)))
}

// localHostOnly refuses requests whose Host is a public domain name. The gateway is reached by
// its address or a LAN name; a public name pointing at it is DNS rebinding, a web site using a
// visitor's browser to reach into the LAN (the session cookie would not follow, but the login
// limit could be spent and the owner locked out).
func localHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLocalHost(r.Host) {
			writeCoded(
				w,
				http.StatusMisdirectedRequest,
				CodeWrongHost,
				"open this page by the gateway's address, e.g. http://192.168.1.1:8080/",
			)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isLocalHost reports whether a Host header names the gateway the way a LAN does: an IP
// address, a single-label name, or a name under a suffix reserved for private networks.
func isLocalHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if !strings.Contains(host, ".") {
		return true // "localhost", "router", "camgate"
	}
	for _, suffix := range []string{".local", ".lan", ".home", ".home.arpa", ".internal", ".localdomain", ".localhost",
		".intranet", ".corp", ".private"} {
		if strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// securityHeaders sets what every response carries: the page runs only its own files, cannot be
// framed, and leaks nothing in a Referer.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "+
			"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}
