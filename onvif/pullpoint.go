package onvif

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// PullPointConfig configures a PullPoint event loop.
type PullPointConfig struct {
	Client *Client
	// Lifetime of the subscription, renewed at 80% (default 10 minutes, as Home Assistant does).
	Lifetime time.Duration
	// PullTimeout is how long each PullMessages may wait on the device (default 20 s).
	PullTimeout time.Duration
	// MessageLimit per pull (default 100).
	MessageLimit int
	Logger       *slog.Logger
}

// PullPoint keeps a PullPoint subscription alive on one device and delivers its notifications.
// When the device forgets the subscription (reboot) or a pull fails, it subscribes again; it
// never unsubscribes, because some cameras then drop every subscription, other clients' too.
type PullPoint struct {
	cfg PullPointConfig
	log *slog.Logger
	out chan Notification
}

// NewPullPoint checks the configuration.
func NewPullPoint(cfg PullPointConfig) (*PullPoint, error) {
	if cfg.Client == nil {
		return nil, errors.New("onvif: pull point: no client")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 10 * time.Minute
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = 20 * time.Second
	}
	if cfg.MessageLimit <= 0 {
		cfg.MessageLimit = 100
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &PullPoint{cfg: cfg, log: log.With("xaddr", cfg.Client.XAddr()), out: make(chan Notification, 64)}, nil
}

// Notifications delivers every notification pulled, in order. Run blocks while it is full.
func (p *PullPoint) Notifications() <-chan Notification { return p.out }

// Run subscribes, pulls and renews until ctx ends; failures are logged and retried with a
// jittered backoff from 1 s to 1 min.
func (p *PullPoint) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		err := p.session(ctx)
		if ctx.Err() != nil {
			break
		}
		p.log.Warn("onvif: pull point failed; subscribing again", "err", err, "in", backoff)
		if !sleep(ctx, backoff/2+rand.N(backoff/2+1)) {
			break
		}
		backoff = min(2*backoff, time.Minute)
		if err == nil {
			backoff = time.Second
		}
	}
	return nil
}

// session runs one subscription until it fails.
func (p *PullPoint) session(ctx context.Context) error {
	c := p.cfg.Client
	sub, err := c.CreatePullPointSubscription(ctx, p.cfg.Lifetime)
	if err != nil {
		return err
	}
	p.log.Debug("onvif: subscribed", "address", sub.Address, "until", sub.TerminationTime)
	renewAt := time.Now().Add(p.cfg.Lifetime * 8 / 10)
	for {
		if time.Now().After(renewAt) {
			if _, err := c.Renew(ctx, sub, p.cfg.Lifetime); err != nil {
				return err
			}
			renewAt = time.Now().Add(p.cfg.Lifetime * 8 / 10)
		}
		timeout := min(p.cfg.PullTimeout, max(time.Until(renewAt), time.Second))
		ns, err := c.PullMessages(ctx, sub, timeout, p.cfg.MessageLimit)
		if err != nil {
			return err
		}
		for _, n := range ns {
			select {
			case p.out <- n:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
