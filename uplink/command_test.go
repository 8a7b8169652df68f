package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// commands is the handler SC's commands reach in these tests.
type commands struct {
	release chan struct{}
}

func (c *commands) HandleCommand(ctx context.Context, name string, payload json.RawMessage) (map[string]any, error) {
	switch name {
	case "echo":
		var v map[string]any
		if err := json.Unmarshal(payload, &v); err != nil {
			return nil, err
		}
		// A handler cannot forge the envelope.
		return map[string]any{"echo": v, "id": "forged", "ok": "forged"}, nil
	case "block":
		select {
		case <-c.release:
		case <-ctx.Done():
		}
		return map[string]any{"unblocked": true}, nil
	case "panic":
		panic("handler bug")
	}
	return nil, fmt.Errorf("unknown command %q", name)
}

type reply struct {
	ID    any    `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Echo  any    `json:"echo"`
}

func replies(t *testing.T, s *subscriber, name string) []reply {
	t.Helper()
	var out []reply
	for _, p := range s.received(prefix + "/cmd/" + name + "/reply") {
		var r reply
		if err := json.Unmarshal([]byte(p), &r); err != nil {
			t.Fatalf("reply %q is not JSON: %v", p, err)
		}
		out = append(out, r)
	}
	return out
}

// sendCommand publishes payload from a file (a 1 MB argument is over Linux's argv limit).
func sendCommand(t *testing.T, b *broker, name string, payload []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(f, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := peer(t, "mosquitto_pub", "mosquitto-clients")
	out, err := exec.Command(bin, "-h", "127.0.0.1", "-p", fmt.Sprint(b.port), "-q", "1",
		"-t", prefix+"/cmd/"+name, "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func TestCommands(t *testing.T) {
	b := startBroker(t, "")
	sub := subscribe(t, b, nil, prefix+"/cmd/+/reply")
	h := &commands{release: make(chan struct{})}
	defer close(h.release)
	m := newTestMQTT(t, "mqtt://"+b.addr(), newMemQueue(), func(c *MQTTConfig) { c.Commands = h })
	m.cmdTimeout = 2 * time.Second
	runMQTT(t, m)
	eventually(t, "connected", 20*time.Second, m.Connected)
	// Subscribing to commands follows the connection; wait for it by a command that answers.
	eventually(t, "the command subscription", 20*time.Second, func() bool {
		sendCommand(t, b, "echo", []byte(`{"id":"ping"}`))
		time.Sleep(100 * time.Millisecond)
		return len(replies(t, sub, "echo")) > 0
	})

	// A handler that does not return holds its slot but nothing else.
	sendCommand(t, b, "block", []byte(`{"id":"b1"}`))

	tests := []struct {
		name, command string
		payload       []byte
		want          reply
		wantErr       string
	}{
		{"valid", "echo", []byte(`{"id":"a1","x":1}`),
			reply{ID: "a1", OK: true, Echo: map[string]any{"id": "a1", "x": 1.0}}, ""},
		{"numeric id comes back as a number", "echo", []byte(`{"id":42}`),
			reply{ID: 42.0, OK: true, Echo: map[string]any{"id": 42.0}}, ""},
		{"invalid JSON", "bad1", []byte(`{"id":"x1",`), reply{ID: ""}, "not a JSON object"},
		{"not an object", "bad2", []byte(`["id"]`), reply{ID: ""}, "not a JSON object"},
		{"missing id", "bad3", []byte(`{"camera_id":"c1"}`), reply{ID: ""}, `no "id"`},
		{"null id", "bad4", []byte(`{"id":null}`), reply{ID: ""}, `no "id"`},
		{"object id", "bad5", []byte(`{"id":{}}`), reply{ID: ""}, `string or a number`},
		{"unknown command", "frobnicate", []byte(`{"id":"u1"}`), reply{ID: "u1"}, `unknown command "frobnicate"`},
		{"1 MB payload", "add_camera", append(append([]byte(`{"id":"big","pad":"`), strings.Repeat("x", 1<<20)...), `"}`...),
			reply{ID: ""}, "over the 64 KiB limit"},
		{"handler panics", "panic", []byte(`{"id":"p1"}`), reply{ID: "p1"}, "handler bug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sendCommand(t, b, tt.command, tt.payload)
			eventually(t, "a reply", 20*time.Second, func() bool {
				for _, r := range replies(t, sub, tt.command) {
					if fmt.Sprint(r.ID) == fmt.Sprint(tt.want.ID) && (tt.wantErr == "" || r.Error != "") {
						return true
					}
				}
				return false
			})
			var got reply
			for _, r := range replies(t, sub, tt.command) {
				if fmt.Sprint(r.ID) == fmt.Sprint(tt.want.ID) {
					got = r
				}
			}
			if tt.wantErr != "" {
				if got.OK || !strings.Contains(got.Error, tt.wantErr) {
					t.Errorf("reply = %+v, want ok=false and an error with %q", got, tt.wantErr)
				}
				return
			}
			if !got.OK || got.Error != "" || fmt.Sprint(got.Echo) != fmt.Sprint(tt.want.Echo) {
				t.Errorf("reply = %+v, want %+v", got, tt.want)
			}
		})
	}

	if got := replies(t, sub, "block"); len(got) != 0 {
		t.Errorf("the blocked command answered early: %+v", got)
	}
	eventually(t, "the blocked command to time out", 20*time.Second, func() bool {
		return len(replies(t, sub, "block")) == 1
	})
	if r := replies(t, sub, "block")[0]; r.OK || r.ID != "b1" || !strings.Contains(r.Error, "did not finish") {
		t.Errorf("timed-out reply = %+v", r)
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		payload string
		wantID  string
		wantErr error
	}{
		{`{"id":"x"}`, `"x"`, nil},
		{`{"id":-1.5e3}`, `-1.5e3`, nil},
		{` {"id" : "x" } `, `"x"`, nil},
		{`{"id":true}`, `""`, errors.New(`"id" must be a string or a number`)},
		{``, `""`, errors.New("not a JSON object")},
		{`"id"`, `""`, errors.New("not a JSON object")},
	}
	for _, tt := range tests {
		id, _, err := parseCommand([]byte(tt.payload))
		if string(id) != tt.wantID || (err == nil) != (tt.wantErr == nil) ||
			err != nil && !strings.Contains(err.Error(), tt.wantErr.Error()) {
			t.Errorf("parseCommand(%q) = %s, %v; want %s, %v", tt.payload, id, err, tt.wantID, tt.wantErr)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`{"id":"a"}`, `{"id":1}`, `{"id":null}`, `{`, `[]`, `{"id":{"a":[1,2]}}`,
		"{\"id\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, raw, err := parseCommand(payload)
		if !json.Valid(id) {
			t.Fatalf("id %q is not JSON", id)
		}
		if err == nil && (len(raw) == 0 || len(raw) > maxCommandBytes) {
			t.Fatalf("accepted %d bytes", len(raw))
		}
		// Whatever came in, the reply must be encodable.
		if _, err := json.Marshal(map[string]any{"id": id, "ok": false}); err != nil {
			t.Fatalf("reply for id %q: %v", id, err)
		}
	})
}

func TestCommandsBeyondTheBoundAreRefusedNotQueued(t *testing.T) {
	b := startBroker(t, "")
	sub := subscribe(t, b, nil, prefix+"/cmd/+/reply")
	h := &commands{release: make(chan struct{})}
	m := newTestMQTT(t, "mqtt://"+b.addr(), newMemQueue(), func(c *MQTTConfig) { c.Commands = h })
	runMQTT(t, m)
	eventually(t, "the command subscription", 20*time.Second, func() bool {
		sendCommand(t, b, "echo", []byte(`{"id":"ping"}`))
		time.Sleep(100 * time.Millisecond)
		return len(replies(t, sub, "echo")) > 0
	})
	for i := range maxCommandsAtOnce + 1 {
		sendCommand(t, b, "block", fmt.Appendf(nil, `{"id":"b%d"}`, i))
	}
	eventually(t, "a busy reply", 20*time.Second, func() bool { return len(replies(t, sub, "block")) == 1 })
	if r := replies(t, sub, "block")[0]; r.OK || !strings.Contains(r.Error, "busy") {
		t.Errorf("reply beyond the bound = %+v, want busy", r)
	}
	close(h.release)
	eventually(t, "every blocked command to answer once released", 20*time.Second, func() bool {
		return len(replies(t, sub, "block")) == maxCommandsAtOnce+1
	})
}
