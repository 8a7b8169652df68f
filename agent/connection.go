package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"

	"github.com/camgate/camgate/agent/web"
	"github.com/camgate/camgate/internal/endpoint"
)

// connectionSettings are the SC and Flussonic settings made on the pairing page. Kept in the
// store, they win over the file's mqtt and flussonic keys: they are the owner's latest word, and
// the page must work without anyone editing a file.
type connectionSettings struct {
	MQTT      *mqttSettings      `json:"mqtt,omitempty"`
	Flussonic *flussonicSettings `json:"flussonic,omitempty"`
}

type mqttSettings struct {
	URL         string `json:"url"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	TopicPrefix string `json:"topic_prefix"`
}

type flussonicSettings struct {
	Publish    string            `json:"publish"` // with credentials
	StreamName string            `json:"stream_name"`
	Events     []EventSinkConfig `json:"events"`
}

const settingConnection = "connection"

func (a *Agent) storedConnection() (connectionSettings, error) {
	var cs connectionSettings
	b, ok, err := a.db.Settings().Get(settingConnection)
	if err != nil || !ok {
		return cs, err
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		return connectionSettings{}, fmt.Errorf("store: connection settings: %w", err)
	}
	return cs, nil
}

// overlay applies stored page settings to a config.
func (cs connectionSettings) overlay(c *Config) {
	if m := cs.MQTT; m != nil {
		c.MQTT.URL, c.MQTT.Username, c.MQTT.Password = m.URL, m.Username, m.Password
		if m.TopicPrefix != "" {
			c.MQTT.TopicPrefix = m.TopicPrefix
		}
	}
	if f := cs.Flussonic; f != nil {
		c.Flussonic.Publish = f.Publish
		if f.StreamName != "" {
			c.Flussonic.StreamName = f.StreamName
		}
		if f.Events != nil {
			c.Flussonic.Events = f.Events
			for i := range c.Flussonic.Events {
				if c.Flussonic.Events[i].Format == "" { // stored before config revision 2
					c.Flussonic.Events[i].Format = FormatEventSink
				}
			}
		}
	}
}

// connectionRequest carries the page's new connection settings. The loop merges them with
// the stored ones and the running config, so that a reload and a page change never undo each
// other.
type connectionRequest struct{ update web.ConnectionUpdate }

func (q connectionRequest) serve(r *registry) result {
	cs, notices := r.conn.merge(&r.loaded.Config, q.update)
	l := r.loaded
	cs.overlay(&l.Config)
	if err := l.Validate(); err != nil {
		return result{err: requestError(err)}
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return result{err: fmt.Errorf("encoding connection settings: %w", err)}
	}
	if err := r.a.db.Settings().Put(settingConnection, b); err != nil {
		return result{err: fmt.Errorf("saving connection settings: %w", err)}
	}
	old := r.loaded
	r.conn, r.loaded = cs, l
	// As on reload, only what changed restarts: a new stream name restarts relays, not MQTT.
	if !reflect.DeepEqual(old.MQTT, l.MQTT) || !reflect.DeepEqual(old.Flussonic.Events, l.Flussonic.Events) {
		r.restartUplink()
	}
	for _, n := range notices {
		r.a.log.Warn("connection settings: " + n)
	}
	r.reconcile()
	return result{notice: strings.Join(notices, "; ")}
}

// uplinkRun is the running uplink's lifetime, so that new settings can replace it.
type uplinkRun struct {
	stop     func()
	wg       sync.WaitGroup
	stopping bool
}

// startUplink starts the uplink for cfg. Only ever called with no uplink running.
func (r *registry) startUplink(cfg *Config) {
	ctx, stop := context.WithCancel(context.WithoutCancel(r.ctx))
	run := &uplinkRun{stop: stop}
	r.a.startUplink(ctx, cfg, &run.wg)
	r.uplink = run
	r.a.log.Info("uplink (re)started", "mqtt", redactURL(cfg.MQTT.URL), "event_sinks", len(cfg.Flussonic.Events))
}

// restartUplink asks the running uplink to stop; the new one starts when it has (uplinkStopped),
// with the settings loaded by then. Two MQTT clients with one client id never run at once.
func (r *registry) restartUplink() {
	next := r.loaded.Config
	r.next = &next
	run := r.uplink
	if run == nil {
		r.startUplink(r.next)
		r.next = nil
		return
	}
	if run.stopping {
		return // already asked; the latest settings win when it has ended
	}
	run.stopping = true
	run.stop()
	a := r.a
	go func() {
		run.wg.Wait()
		a.tell(uplinkStopped{run: run})
	}()
}

// uplinkStopped says the uplink asked to stop has ended.
type uplinkStopped struct{ run *uplinkRun }

func (q uplinkStopped) serve(r *registry) result {
	if r.uplink != q.run {
		return result{}
	}
	r.uplink = nil
	if r.next != nil {
		r.next = &r.loaded.Config
		r.startUplink(r.next)
		r.next = nil
	}
	r.reconcile() // the new uplink knows no registration yet
	return result{}
}

// merge applies the page's update to the stored settings. A password left empty keeps the
// one in use (cfg), unless the update clears it or moves its URL to another endpoint: a secret
// stays with the host, port and scheme (or TLS) it was given for (issue 13,
// endpoint.SecretMayStay), and each one dropped so is named in notices.
func (cs connectionSettings) merge(cfg *Config, u web.ConnectionUpdate) (connectionSettings, []string) {
	var notices []string
	if m := u.MQTT; m != nil {
		newURL := strings.TrimSpace(m.URL)
		pass := m.Password
		if pass == "" && !m.ClearPassword {
			if endpoint.SecretMayStay(cfg.MQTT.URL, newURL) {
				pass = cfg.MQTT.Password
			} else if cfg.MQTT.Password != "" {
				notices = append(notices, "mqtt."+NoticePasswordCleared)
			}
		}
		cs.MQTT = &mqttSettings{URL: newURL, Username: m.Username, Password: pass,
			TopicPrefix: strings.TrimSpace(m.TopicPrefix)}
	}
	if f := u.Flussonic; f != nil {
		_, oldUser, _ := splitUserinfo(cfg.Flussonic.Publish)
		publish := strings.TrimSpace(f.Publish)
		moved := !endpoint.SecretMayStay(cfg.Flussonic.Publish, publish)
		pass := f.Password
		if pass == "" && !f.ClearPassword && oldUser == f.Username && !moved {
			pass = storedPassword(cfg.Flussonic.Publish)
		}
		if moved && f.Password == "" && !f.ClearPassword && hasPublishSecret(cfg.Flussonic.Publish) &&
			!hasPublishSecret(publish) {
			notices = append(notices, "flussonic.publish "+NoticePasswordCleared)
		}
		if publish != "" {
			publish = joinUserinfo(publish, f.Username, pass)
		}
		events := cfg.Flussonic.Events
		if f.Events != nil {
			events = nil
			for _, s := range *f.Events {
				sink := defaultEventSink()
				sink.URL = s.URL
				if s.Format != "" {
					sink.Format = s.Format
				}
				// A sink coming back from the page keeps what the page does not show: the
				// stored password of a URL with a user, its server and its headers.
				for _, old := range cfg.Flussonic.Events {
					clean, user, _ := splitUserinfo(old.URL)
					if old.URL == s.URL || user != "" && joinUserinfo(clean, user, "") == s.URL {
						sink.URL, sink.Server, sink.Headers = old.URL, old.Server, old.Headers
					}
				}
				events = append(events, sink)
			}
		}
		cs.Flussonic = &flussonicSettings{Publish: publish, StreamName: strings.TrimSpace(f.StreamName), Events: events}
	}
	return cs, notices
}

// hasPublishSecret says whether a publish URL carries a password, in its user information or in
// the query (Flussonic's ?password=, SPEC §4).
func hasPublishSecret(raw string) bool {
	if storedPassword(raw) != "" {
		return true
	}
	u, err := url.Parse(raw)
	return err == nil && u.Query().Get("password") != ""
}

// splitUserinfo takes credentials out of a URL, for showing it.
func splitUserinfo(raw string) (clean, user string, hasPassword bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw, "", false
	}
	user = u.User.Username()
	_, hasPassword = u.User.Password()
	u.User = nil
	return u.String(), user, hasPassword
}

// joinUserinfo puts credentials into a URL.
func joinUserinfo(raw, user, password string) string {
	u, err := url.Parse(raw)
	if err != nil || user == "" {
		return raw
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}
