package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
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
	return cs, json.Unmarshal(b, &cs)
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

// applyStoredConnection overlays the page's settings on a freshly loaded config.
func (a *Agent) applyStoredConnection(l *Loaded) {
	cs, err := a.storedConnection()
	if err != nil {
		a.log.Error("store: connection settings do not parse; using the file's", "err", err)
		return
	}
	if cs.MQTT != nil || cs.Flussonic != nil {
		cs.overlay(&l.Config)
		a.log.Info("connection settings from the pairing page override the file's mqtt/flussonic keys")
	}
}

// setConnection validates, stores and applies new connection settings: the uplink restarts with
// them and relays whose publish URL changed restart.
func (a *Agent) setConnection(ctx context.Context, cs connectionSettings) error {
	l := a.config()
	cs.overlay(&l.Config)
	if err := l.Validate(); err != nil {
		return requestError(err)
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	if err := a.db.Settings().Put(settingConnection, b); err != nil {
		return fmt.Errorf("saving connection settings: %w", err)
	}
	a.mu.Lock()
	a.loaded = l
	a.mu.Unlock()
	a.restartUplink(&l.Config)
	a.reconcile(a.runContext())
	return nil
}

// uplinkRun is the running uplink's lifetime, so that new settings can replace it.
type uplinkRun struct {
	stop func()
	wg   sync.WaitGroup
}

func (a *Agent) restartUplink(cfg *Config) {
	a.mu.Lock()
	old := a.linkRun
	a.mu.Unlock()
	if old != nil {
		old.stop()
		old.wg.Wait()
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(a.runContext()))
	run := &uplinkRun{stop: stop}
	a.startUplink(ctx, cfg, &run.wg)
	a.mu.Lock()
	a.linkRun = run
	a.mu.Unlock()
	a.log.Info("uplink (re)started", "mqtt", redactURL(cfg.MQTT.URL), "event_sinks", len(cfg.Flussonic.Events))
}

func (a *Agent) stopUplink() {
	a.mu.Lock()
	run := a.linkRun
	a.linkRun = nil
	a.mu.Unlock()
	if run != nil {
		run.stop()
		run.wg.Wait()
	}
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
