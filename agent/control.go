package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/camgate/camgate/store"
)

// ControlSocket is the daemon's local control socket in the data dir. Only the daemon's user can
// reach it (mode 0600); `camgate outbox` uses it while the daemon holds the database.
const ControlSocket = "camgate.sock"

// serveControl answers the operator commands on a Unix socket. It carries no camera or broker
// secret and is not reachable over the network.
func (a *Agent) serveControl(ctx context.Context, dataDir string, wg *sync.WaitGroup) {
	path := filepath.Join(dataDir, ControlSocket)
	os.Remove(path) // a stale socket of a killed daemon; the store's lock already made us the only one
	l, err := net.Listen("unix", path)
	if err != nil {
		a.log.Warn("control socket unavailable: `camgate outbox` needs the daemon stopped", "path", path, "err", err)
		return
	}
	if err := os.Chmod(path, 0o600); err != nil {
		a.log.Warn("control socket: cannot make it owner-only", "path", path, "err", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /outbox/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResponse(w, a.db.Outbox().Stats())
	})
	mux.HandleFunc("GET /outbox/list", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("max"))
		list, err := OutboxList(a.db.Outbox(), r.URL.Query().Get("queue"), n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSONResponse(w, list)
	})
	mux.HandleFunc("POST /outbox/purge", func(w http.ResponseWriter, r *http.Request) {
		// Purge takes no context: once asked, it is not abandoned half-way.
		n, err := a.db.Outbox().Purge(r.URL.Query().Get("queue")) //nolint:contextcheck // see above
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		a.log.Warn("outbox purged by the operator", "queue", r.URL.Query().Get("queue"), "messages", n)
		writeJSONResponse(w, map[string]int{"purged": n})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		a.writePrometheus(w, true) // only the daemon's user reaches the socket: per camera too
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(l) }() // ErrServerClosed once Shutdown runs
	go func() {
		defer wg.Done()
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut) // past the timeout the socket goes away below all the same
		os.Remove(path)
	}()
}

func writeJSONResponse(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // plain values: only a client that went away makes it fail
}

// OutboxEntry is one queued message as `camgate outbox list` shows it.
type OutboxEntry struct {
	Queue    string    `json:"queue"`
	Seq      uint64    `json:"seq"`
	Class    string    `json:"class"`
	Topic    string    `json:"topic,omitempty"`
	Retain   bool      `json:"retain,omitempty"`
	Bytes    int       `json:"bytes"`
	Enqueued time.Time `json:"enqueued"`
	Preview  string    `json:"preview"`
}

// OutboxList returns up to max of the oldest messages of one queue, or of every queue.
func OutboxList(ob *store.Outbox, queue string, max int) ([]OutboxEntry, error) {
	if max <= 0 {
		max = 50
	}
	queues := []string{queue}
	if queue == "" {
		queues = queues[:0]
		for q := range ob.Stats().Queues {
			queues = append(queues, q)
		}
	}
	var out []OutboxEntry
	for _, q := range queues {
		msgs, err := ob.Peek(q, max)
		if err != nil {
			return nil, fmt.Errorf("outbox %s: %w", q, err)
		}
		for _, m := range msgs {
			out = append(out, OutboxEntry{Queue: q, Seq: m.Seq, Class: m.Class.String(), Topic: m.Topic, Retain: m.Retain,
				Bytes: len(m.Payload), Enqueued: m.Enqueued, Preview: preview(m.Payload)})
		}
	}
	return out, nil
}

// preview shows the start of a text payload; binary ones (snapshots) are described, not dumped.
func preview(b []byte) string {
	const n = 100
	if len(b) >= 2 && b[0] == 0xFF && b[1] == 0xD8 {
		return fmt.Sprintf("<JPEG, %d bytes>", len(b))
	}
	for _, c := range b[:min(len(b), n)] {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return fmt.Sprintf("<binary, %d bytes>", len(b))
		}
	}
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// ErrDaemonNotRunning means no daemon answered on the control socket.
var ErrDaemonNotRunning = errors.New("camgate is not running")

// ControlClient talks to a running daemon over its control socket.
func ControlClient(dataDir string) (*http.Client, error) {
	path := filepath.Join(dataDir, ControlSocket)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, ErrDaemonNotRunning
	}
	c.Close()
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}, nil
}
