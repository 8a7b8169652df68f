package onvif

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Basic Notification (WS-BaseNotification push) is the fallback for cameras without PullPoint:
// the camera POSTs wsnt:Notify to a consumer URL served on the gateway's LAN address.
//
// How a caller chooses: PullPoint first. A camera without it answers CreatePullPointSubscription
// with an ActionNotSupported (or similar) fault, for which errors.Is(err, ErrNotSupported) holds;
// then run a BasicNotification with a NotifyReceiver instead. A probe subscription that did
// succeed is left to expire, never unsubscribed (give the probe a short lifetime).

// notifyBufferSize is how many notifications a NotifyReceiver holds for a slow reader.
const notifyBufferSize = 64

// Subscribe asks the device to POST notifications to consumer (WS-BaseNotification Subscribe on
// the events service) for lifetime; returns the subscription (its manager address, termination).
func (c *Client) Subscribe(ctx context.Context, consumer string, lifetime time.Duration) (*Subscription, error) {
	action := "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest"
	body := `<wsnt:Subscribe><wsnt:ConsumerReference><wsa:Address>` + xmlEscape(consumer) +
		`</wsa:Address></wsnt:ConsumerReference><wsnt:InitialTerminationTime>` + xsDuration(lifetime) +
		`</wsnt:InitialTerminationTime></wsnt:Subscribe>`
	to := c.eventsAddr()
	res, err := c.call(ctx, to, nsEvents, "Subscribe", body,
		withAction(action), withHeader(addressingHeader(action, to)))
	if err != nil {
		return nil, err
	}
	addr := res.path("SubscriptionReference", "Address").text()
	if addr == "" {
		return nil, fmt.Errorf("onvif %s: Subscribe: answer has no SubscriptionReference", c.xaddr)
	}
	return &Subscription{
		Address:         c.fixServiceURL(addr),
		CurrentTime:     parseTime(res.child("CurrentTime").text()),
		TerminationTime: parseTime(res.child("TerminationTime").text()),
	}, nil
}

// NotifyReceiver is an http.Handler that accepts wsnt:Notify POSTs (SOAP 1.2 and 1.1) from one
// camera and hands their notifications to Notifications. It answers at once and never blocks
// on the reader: cameras give up on, or even cancel, consumers that answer slowly.
type NotifyReceiver struct {
	log     *slog.Logger
	out     chan Notification
	dropped atomic.Uint64
}

// NewNotifyReceiver returns a receiver; a nil logger means slog.Default().
func NewNotifyReceiver(logger *slog.Logger) *NotifyReceiver {
	if logger == nil {
		logger = slog.Default()
	}
	return &NotifyReceiver{log: logger, out: make(chan Notification, notifyBufferSize)}
}

// Notifications delivers the notifications received, in order. When the reader falls more than
// a buffer behind, new ones are dropped, counted (Dropped) and logged.
func (r *NotifyReceiver) Notifications() <-chan Notification { return r.out }

// Dropped is how many notifications were dropped because the reader was slow.
func (r *NotifyReceiver) Dropped() uint64 { return r.dropped.Load() }

// ServeHTTP takes one Notify: 200 with an empty body (a one-way SOAP operation) when it parsed,
// 413 when larger than 1 MiB, 400 when it is not a Notify envelope, 405 for anything but POST.
func (r *NotifyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "notifications are POSTed", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBodyBytes))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		r.log.Warn("onvif: notify: unreadable body", "remote", req.RemoteAddr, "err", err)
		http.Error(w, "unreadable body", status)
		return
	}
	ns, err := parseNotify(data)
	if err != nil {
		r.log.Warn("onvif: notify: malformed", "remote", req.RemoteAddr, "bytes", len(data), "err", err)
		http.Error(w, "not a wsnt:Notify envelope", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	for _, n := range ns {
		select {
		case r.out <- n:
		default:
			if d := r.dropped.Add(1); d == 1 || d%100 == 0 {
				r.log.Warn("onvif: notify: reader is slow; notification dropped", "topic", n.Topic, "dropped", d)
			}
		}
	}
}

// parseNotify reads a Notify request; any other SOAP body is an error.
func parseNotify(data []byte) ([]Notification, error) {
	body, err := parseEnvelope(data)
	if err != nil {
		return nil, err
	}
	if f := faultOf(body); f != nil {
		return nil, fmt.Errorf("a SOAP fault (%s: %s), not a Notify", f.Code, f.Reason)
	}
	notify := body.child("Notify")
	if notify == nil {
		return nil, errors.New("SOAP body holds no Notify")
	}
	return parseNotifications(notify), nil
}

// BasicNotificationConfig configures a Basic Notification subscription loop.
type BasicNotificationConfig struct {
	Client *Client
	// Consumer is the http(s) URL the camera is to POST to, served by a NotifyReceiver.
	Consumer string
	// Lifetime of the subscription, renewed at 80% (default 10 minutes, as Home Assistant does).
	Lifetime time.Duration
	Logger   *slog.Logger
}

// BasicNotification keeps a Basic Notification subscription alive on one device: it subscribes,
// renews at 80% of the lifetime, and subscribes again with a jittered backoff when a renewal fails
// (the device rebooted and forgot it, or was unreachable). Like PullPoint it never unsubscribes.
// The notifications themselves arrive at the NotifyReceiver serving Consumer.
type BasicNotification struct {
	cfg   BasicNotificationConfig
	log   *slog.Logger
	again chan struct{}
}

// NewBasicNotification checks the configuration; it sends nothing.
func NewBasicNotification(cfg BasicNotificationConfig) (*BasicNotification, error) {
	if cfg.Client == nil {
		return nil, errors.New("onvif: basic notification: no client")
	}
	u, err := url.Parse(cfg.Consumer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("onvif: basic notification: consumer %q: want an http(s)://host/... URL", cfg.Consumer)
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 10 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &BasicNotification{cfg: cfg, log: log.With("xaddr", cfg.Client.XAddr()), again: make(chan struct{}, 1)}, nil
}

// Resubscribe makes Run subscribe again now instead of at the next renewal. A device that
// rebooted has forgotten the subscription, and only a failed renewal would tell: call this when
// there is other news of a reboot (a WS-Discovery Hello, the RTSP session coming back).
func (b *BasicNotification) Resubscribe() {
	select {
	case b.again <- struct{}{}:
	default:
	}
}

// Run subscribes and renews until ctx ends; failures are logged and retried with a jittered
// backoff from 1 s to 1 min. It returns nil when ctx ends, or an error matching ErrNotSupported
// when the device refuses Subscribe as an operation it does not implement.
func (b *BasicNotification) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		err := b.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrNotSupported) {
			return fmt.Errorf("onvif: basic notification: %w", err)
		}
		if errors.Is(err, errResubscribe) {
			backoff = time.Second
			continue
		}
		b.log.Warn("onvif: basic notification failed; subscribing again", "err", err, "in", backoff)
		if !sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
			break
		}
		backoff = min(2*backoff, time.Minute)
	}
	return nil
}

var errResubscribe = errors.New("resubscribe asked for")

// session runs one subscription until a renewal fails.
func (b *BasicNotification) session(ctx context.Context) error {
	c := b.cfg.Client
	sub, err := c.Subscribe(ctx, b.cfg.Consumer, b.cfg.Lifetime)
	if err != nil {
		return err
	}
	b.log.Info("onvif: subscribed for notifications",
		"consumer", b.cfg.Consumer, "manager", sub.Address, "until", sub.TerminationTime)
	renewIn := b.renewIn(sub)
	for {
		t := time.NewTimer(renewIn)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-b.again:
			t.Stop()
			return errResubscribe
		case <-t.C:
		}
		if _, err := c.Renew(ctx, sub, b.cfg.Lifetime); err != nil {
			return fmt.Errorf("renew: %w", err)
		}
		b.log.Debug("onvif: notification subscription renewed", "until", sub.TerminationTime)
		renewIn = b.renewIn(sub)
	}
}

// renewIn is 80% of the lifetime, or of what the device granted when it granted less. Both ends
// of the grant are the device's clock, so its skew does not matter.
func (b *BasicNotification) renewIn(sub *Subscription) time.Duration {
	life := b.cfg.Lifetime
	if !sub.CurrentTime.IsZero() && !sub.TerminationTime.IsZero() {
		if granted := sub.TerminationTime.Sub(sub.CurrentTime); granted > 0 && granted < life {
			life = granted
		}
	}
	return max(life*8/10, time.Second)
}

// LocalAddrFor returns the local IP address the kernel would use to reach remote: a host,
// host:port or URL, e.g. a camera's XAddr. It connects a UDP socket, which sends no packet, so
// a consumer URL built from the answer is one the camera can reach.
func LocalAddrFor(remote string) (netip.Addr, error) {
	host := strings.TrimSpace(remote)
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Hostname()
	} else if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return netip.Addr{}, fmt.Errorf("onvif: local address for %q: no host", remote)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.Dial("udp", net.JoinHostPort(host, "9"))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("onvif: local address for %q: %w", remote, err)
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("onvif: local address for %q: %w", remote, err)
	}
	return ap.Addr().Unmap(), nil
}
