package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// command answers one message on P/cmd/<name>. It never blocks paho's delivery: the handler runs in
// its own goroutine, at most maxCommandsAtOnce at a time, each bounded by m.cmdTimeout.
func (m *MQTT) command(ctx context.Context, handlers *inflight, c paho.Client, topic string, payload []byte) {
	name := strings.TrimPrefix(topic, m.prefix+"/cmd/")
	log := m.log.With("command", name)
	id, raw, err := parseCommand(payload)
	if err != nil {
		log.Warn("rejecting mqtt command", "err", err, "bytes", len(payload))
		m.reply(ctx, c, name, id, nil, err)
		return
	}
	select {
	case m.cmdSlots <- struct{}{}:
	default:
		err := fmt.Errorf("busy: %d commands already running", cap(m.cmdSlots))
		log.Warn("rejecting mqtt command", "err", err)
		m.reply(ctx, c, name, id, nil, err)
		return
	}
	if !handlers.add() {
		<-m.cmdSlots
		return // Run is returning
	}
	go func() {
		defer handlers.done()
		ctx, cancel := context.WithTimeout(ctx, m.cmdTimeout)
		defer cancel()
		type result struct {
			fields map[string]any
			err    error
		}
		done := make(chan result, 1)
		go func() {
			// The slot is held until the handler really returns, so handlers that ignore their
			// context cannot pile up beyond the bound.
			defer func() { <-m.cmdSlots }()
			defer func() {
				if p := recover(); p != nil {
					done <- result{err: fmt.Errorf("command failed: %v", p)}
				}
			}()
			f, err := m.cfg.Commands.HandleCommand(ctx, name, raw)
			done <- result{f, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-ctx.Done():
			r.err = fmt.Errorf("command did not finish within %v", m.cmdTimeout)
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// Run is stopping (the uplink restarts): a handler that already acted must not be
				// reported as failed, so it gets a moment to say what it did.
				select {
				case r = <-done:
				case <-time.After(stopGrace):
					r.err = errors.New("command cancelled: the MQTT client is stopping")
				}
			}
		}
		if r.err != nil {
			log.Warn("mqtt command failed", "id", string(id), "err", r.err)
		}
		m.reply(ctx, c, name, id, r.fields, r.err)
	}()
}

// stopGrace is how long a running command may still finish once Run is stopping.
const stopGrace = 2 * time.Second

// parseCommand checks a command payload and returns its "id" (verbatim JSON, `""` when there is
// none) and the payload itself.
func parseCommand(payload []byte) (id json.RawMessage, raw json.RawMessage, err error) {
	id = json.RawMessage(`""`)
	if len(payload) > maxCommandBytes {
		return id, nil, fmt.Errorf("payload of %d bytes is over the %d KiB limit", len(payload), maxCommandBytes>>10)
	}
	var head map[string]json.RawMessage
	if err := json.Unmarshal(payload, &head); err != nil {
		return id, nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	v, ok := head["id"]
	if !ok || string(v) == "null" {
		return id, nil, errors.New(`payload has no "id"`)
	}
	switch v[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		return id, nil, errors.New(`"id" must be a string or a number`)
	}
	return v, payload, nil
}

// reply publishes {"id","ok",...} on P/cmd/<name>/reply.
//
// The reply goes out even when ctx has ended (a command cut off by its timeout or by Run stopping
// still says so), bounded by controlTimeout instead.
func (m *MQTT) reply(
	ctx context.Context, c paho.Client, name string, id json.RawMessage, fields map[string]any, cmdErr error,
) {
	out := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		out[k] = v
	}
	out["id"] = id
	out["ok"] = cmdErr == nil
	if cmdErr != nil {
		out["error"] = cmdErr.Error()
	}
	b, err := json.Marshal(out)
	if err != nil {
		m.log.Error("encoding a command reply", "command", name, "err", err)
		b, err = json.Marshal(map[string]any{"id": id, "ok": false, "error": "reply not encodable: " + err.Error()})
		if err != nil { // only strings now: not seen, but the caller still gets its answer
			b = []byte(`{"ok":false,"error":"reply not encodable"}`)
		}
	}
	t := c.Publish(m.prefix+"/cmd/"+name+"/reply", 1, false, b)
	if err := wait(context.WithoutCancel(ctx), t, controlTimeout, nil); err != nil {
		m.log.Warn("cannot send mqtt command reply", "command", name, "id", string(id), "err", err)
	}
}

// inflight counts running command goroutines so that Run can wait for them, and refuses new ones
// once Run is on its way out (a WaitGroup must not grow while it is being waited on).
type inflight struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (f *inflight) add() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

func (f *inflight) done() { f.wg.Done() }

func (f *inflight) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.wg.Wait()
}
