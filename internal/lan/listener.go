package lan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// denyLogInterval rate-limits the debug log of denied connections, so a scan from the internet
// cannot flood the gateway's log on flash.
const denyLogInterval = 10 * time.Second

// Listener is a net.Listener that closes connections its Policy denies before the server sees
// them, so not a byte is written to them.
type Listener struct {
	net.Listener
	policy *Policy
	log    *slog.Logger
	denied atomic.Uint64
	// checkFailing is set while the policy cannot tell where connections come from; the first
	// failure of each such spell is logged, the rest only counted.
	checkFailing atomic.Bool

	mu         sync.Mutex
	lastLog    time.Time
	suppressed uint64
}

// Listen listens on network and addr (as net.Listen does) and applies p to every connection.
// A nil logger discards.
func Listen(ctx context.Context, network, addr string, p *Policy, log *slog.Logger) (*Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("lan: listen %s %s: %w", network, addr, err)
	}
	return Wrap(l, p, log), nil
}

// Wrap applies p to the connections l accepts. A nil logger discards.
func Wrap(l net.Listener, p *Policy, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Listener{Listener: l, policy: p, log: log}
}

// Accept returns the next allowed connection; denied ones are closed and counted.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		allowed, err := l.policy.check(c.RemoteAddr(), c.LocalAddr())
		switch {
		case err != nil:
			if !l.checkFailing.Swap(true) {
				l.log.Warn("LAN check failed, refusing connections it cannot place", "err", err,
					"listen", l.Addr().String())
			}
		case allowed:
			l.checkFailing.Store(false)
			return c, nil
		}
		// Counted before closing, so whoever sees the close also sees the count.
		l.denied.Add(1)
		c.Close()
		l.logDenied(c)
	}
}

// Denied returns how many connections were closed without a response.
func (l *Listener) Denied() uint64 { return l.denied.Load() }

func (l *Listener) logDenied(c net.Conn) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog) < denyLogInterval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.lastLog, l.suppressed = now, 0
	l.mu.Unlock()
	l.log.Debug("connection denied by LAN policy",
		"remote", c.RemoteAddr().String(), "local", c.LocalAddr().String(),
		"listen", l.Addr().String(), "suppressed_since_last", suppressed)
}
