package onvifdev

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Basic Notification: consumers Subscribe with a URL, and the device POSTs wsnt:Notify to each
// live one when motion changes, as cameras without PullPoint do.

const (
	// pushManagerPath is the subscription manager of push subscriptions; PullPoint ones live at
	// /onvif/subscription, so Renew and Unsubscribe find the right kind by path.
	pushManagerPath = "/onvif/notification_subscription"
	// notifyTimeout bounds each POST to a consumer, so a dead one cannot pile up goroutines.
	notifyTimeout = 2 * time.Second
	// maxPending bounds the Notify posts waiting to be sent; the oldest are dropped beyond it.
	maxPending = 256
	// maxPushSubs bounds the subscriptions a misbehaving client can make.
	maxPushSubs = 64
)

type pushSubscription struct {
	consumer    string
	termination time.Time // device clock
}

type notifyPost struct {
	consumer string
	body     []byte
}

// pushSubscriptions are the device's Basic Notification subscriptions and the posts on their way.
// Posts go out one at a time, in order, from a goroutine that lives while there is work.
type pushSubscriptions struct {
	log    *slog.Logger
	client *http.Client

	mu      sync.Mutex
	subs    map[string]*pushSubscription
	next    int
	pending []notifyPost
	sending bool
	sent    int
	renewed int
}

func newPushSubscriptions(log *slog.Logger) *pushSubscriptions {
	return &pushSubscriptions{log: log, client: &http.Client{Timeout: notifyTimeout}, subs: map[string]*pushSubscription{}}
}

// forget drops every subscription, as a reboot does.
func (p *pushSubscriptions) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs = map[string]*pushSubscription{}
	p.pending = nil
}

// notify queues one Notify to every live subscription.
func (p *pushSubscriptions) notify(now time.Time, op string, motion bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.subs {
		if !now.Before(s.termination) {
			delete(p.subs, id)
			continue
		}
		p.queue(notifyPost{consumer: s.consumer, body: notifyBody(now, op, motion)})
	}
}

// queue needs p.mu held.
func (p *pushSubscriptions) queue(post notifyPost) {
	if len(p.pending) >= maxPending {
		p.pending = p.pending[1:]
	}
	p.pending = append(p.pending, post)
	if !p.sending {
		p.sending = true
		go p.send()
	}
}

func (p *pushSubscriptions) send() {
	for {
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.sending = false
			p.mu.Unlock()
			return
		}
		post := p.pending[0]
		p.pending = p.pending[1:]
		p.mu.Unlock()
		if err := p.post(post); err != nil {
			p.log.Debug("onvifdev: notify", "consumer", post.consumer, "err", err)
			continue
		}
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
	}
}

func (p *pushSubscriptions) post(post notifyPost) error {
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, post.consumer, bytes.NewReader(post.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type",
		`application/soap+xml; charset=utf-8; action="http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"`)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

func notifyBody(when time.Time, op string, motion bool) []byte {
	return fmt.Appendf(nil, `%s<wsnt:Notify><wsnt:NotificationMessage>`+
		`<wsnt:Topic Dialect="`+concreteSet+`">tns1:VideoSource/MotionAlarm</wsnt:Topic>`+
		`<wsnt:Message><tt:Message UtcTime="%s" PropertyOperation="%s"><tt:Source>`+
		`<tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source><tt:Data>`+
		`<tt:SimpleItem Name="State" Value="%t"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>`+
		`</wsnt:Notify>%s`,
		envelopeStart, stamp(when), op, motion, envelopeEnd)
}

// NotifySubscriptions returns the number of live Basic Notification subscriptions.
func (d *Device) NotifySubscriptions() int {
	now := d.now()
	d.push.mu.Lock()
	defer d.push.mu.Unlock()
	n := 0
	for _, s := range d.push.subs {
		if now.Before(s.termination) {
			n++
		}
	}
	return n
}

// NotifiesSent returns how many Notify POSTs consumers accepted.
func (d *Device) NotifiesSent() int {
	d.push.mu.Lock()
	defer d.push.mu.Unlock()
	return d.push.sent
}

// NotifyRenewals returns how many times push subscriptions were renewed.
func (d *Device) NotifyRenewals() int {
	d.push.mu.Lock()
	defer d.push.mu.Unlock()
	return d.push.renewed
}

// subscribe answers a WS-BaseNotification Subscribe and, as cameras do for property events,
// posts the current motion state (Initialized) to the new consumer.
func (d *Device) subscribe(w http.ResponseWriter, req *request) {
	consumer := req.get("Address")
	if u, err := url.Parse(consumer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.fault(w, http.StatusBadRequest, "Sender", "wsntw:InvalidConsumerReferenceFault", "consumer must be an http URL")
		return
	}
	life := parseDuration(req.get("InitialTerminationTime"), time.Minute)
	d.mu.Lock()
	motion := d.motion
	d.mu.Unlock()
	now := d.now()
	p := d.push
	p.mu.Lock()
	if len(p.subs) >= maxPushSubs {
		p.mu.Unlock()
		d.fault(w, http.StatusBadRequest, "Receiver", "wsntw:SubscribeCreationFailedFault", "too many subscriptions")
		return
	}
	p.next++
	id := strconv.Itoa(p.next)
	p.subs[id] = &pushSubscription{consumer: consumer, termination: now.Add(life)}
	p.queue(notifyPost{consumer: consumer, body: notifyBody(now, "Initialized", motion)})
	p.mu.Unlock()
	d.reply(w, fmt.Sprintf(`<wsnt:SubscribeResponse><wsnt:SubscriptionReference>`+
		`<wsa5:Address>%s%s?id=%s</wsa5:Address></wsnt:SubscriptionReference><wsnt:CurrentTime>%s</wsnt:CurrentTime>`+
		`<wsnt:TerminationTime>%s</wsnt:TerminationTime></wsnt:SubscribeResponse>`,
		d.base(), pushManagerPath, id, stamp(now), stamp(now.Add(life))))
}

// managePush answers Renew and Unsubscribe on a push subscription; an expired or forgotten one
// is unknown.
func (d *Device) managePush(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.URL.Query().Get("id")
	now := d.now()
	p := d.push
	p.mu.Lock()
	s, ok := p.subs[id]
	if ok && !now.Before(s.termination) {
		delete(p.subs, id)
		ok = false
	}
	var life time.Duration
	switch {
	case !ok:
	case req.op == "Renew":
		life = parseDuration(req.get("TerminationTime"), time.Minute)
		s.termination = now.Add(life)
		p.renewed++
	default:
		delete(p.subs, id)
	}
	p.mu.Unlock()
	switch {
	case !ok:
		d.fault(w, http.StatusBadRequest, "Sender", "wsrf-rw:ResourceUnknownFault", "unknown subscription "+id)
	case req.op == "Renew":
		d.reply(w, fmt.Sprintf(`<wsnt:RenewResponse><wsnt:TerminationTime>%s</wsnt:TerminationTime>`+
			`<wsnt:CurrentTime>%s</wsnt:CurrentTime></wsnt:RenewResponse>`, stamp(now.Add(life)), stamp(now)))
	default:
		d.reply(w, `<wsnt:UnsubscribeResponse/>`)
	}
}
