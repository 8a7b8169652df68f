package motion

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Source names where an alarm came from.
type Source string

const (
	SourceMail  Source = "smtp"
	SourceONVIF Source = "onvif"
)

// Episode is one camera's open motion episode, as it is persisted.
type Episode struct {
	Camera   string    `json:"camera"`
	MotionID string    `json:"motion_id"`
	Data     string    `json:"data"`            // what the first alarm said, for motion_data
	Start    time.Time `json:"start"`           // the first alarm
	Last     time.Time `json:"last"`            // the latest alarm of any source
	LastMail time.Time `json:"last_mail"`       // the latest mail alarm (zero if none)
	ONVIF    bool      `json:"onvif,omitempty"` // ONVIF reports motion and has not said it ended
}

// Kind tells a started change from a stopped one.
type Kind int

const (
	Started Kind = iota + 1
	Stopped
)

// Change is one event to tell the world: an episode started or stopped.
type Change struct {
	Kind    Kind
	Episode Episode
	End     time.Time // Stopped only: when the episode ended
	Why     string    // Stopped only: hold, onvif, shutdown, restart
}

// Duration is how long a stopped episode lasted.
func (c Change) Duration() time.Duration { return c.End.Sub(c.Episode.Start) }

// Store keeps the open episodes across restarts.
type Store interface {
	SaveEpisode(Episode) error
	DeleteEpisode(camera string) error
	Episodes() ([]Episode, error)
}

// Config configures a Tracker.
type Config struct {
	Hold    time.Duration       // motion.hold
	Now     func() time.Time    // nil = time.Now
	NewID   func() string       // motion ids; required
	Store   Store               // required
	Emit    func(Change) error  // stores the change's event durably; an error undoes the change
	OnError func(string, error) // told of a failure that has no caller to return to; may be nil
}

// Tracker holds the open episodes of every camera. It is not safe for concurrent use.
type Tracker struct {
	cfg  Config
	open map[string]*Episode
}

// New builds a Tracker with no open episode; call Restore to pick up a previous run's.
func New(cfg Config) (*Tracker, error) {
	if cfg.Hold <= 0 || cfg.NewID == nil || cfg.Store == nil || cfg.Emit == nil {
		return nil, errors.New("motion: Hold, NewID, Store and Emit are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnError == nil {
		cfg.OnError = func(string, error) {}
	}
	return &Tracker{cfg: cfg, open: map[string]*Episode{}}, nil
}

// Open reports the open episodes, sorted by camera.
func (t *Tracker) Open() []Episode {
	out := make([]Episode, 0, len(t.open))
	for _, ep := range t.open {
		out = append(out, *ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Camera < out[j].Camera })
	return out
}

// Restore takes over the episodes a previous run left open: those whose hold ran out meanwhile
// stop at last alarm + hold, the others stay open. An episode whose stopped event cannot be
// stored stays open and is tried again by Expire.
func (t *Tracker) Restore() error {
	eps, err := t.cfg.Store.Episodes()
	if err != nil {
		return fmt.Errorf("motion: reading open episodes: %w", err)
	}
	for i := range eps {
		ep := eps[i]
		t.open[ep.Camera] = &ep
	}
	return t.Expire()
}

// Alarm records motion reported by source for a camera. It returns an error, and leaves the
// episodes as they were, when the started event or the episode could not be stored.
func (t *Tracker) Alarm(camera string, source Source, data string) error {
	now := t.cfg.Now()
	if ep, ok := t.open[camera]; ok && now.Before(t.end(ep)) {
		next := *ep
		next.Last = now
		if source == SourceMail {
			next.LastMail = now
		} else {
			next.ONVIF = true
		}
		if err := t.cfg.Store.SaveEpisode(next); err != nil {
			return fmt.Errorf("motion: extending the episode of %s: %w", camera, err)
		}
		*ep = next
		return nil
	} else if ok {
		// The hold ran out and Expire has not run yet: that episode is over.
		if err := t.stop(ep, t.end(ep), "hold"); err != nil {
			return err
		}
	}
	ep := Episode{Camera: camera, MotionID: t.cfg.NewID(), Data: data, Start: now, Last: now}
	if source == SourceMail {
		ep.LastMail = now
	} else {
		ep.ONVIF = true
	}
	if err := t.cfg.Store.SaveEpisode(ep); err != nil {
		return fmt.Errorf("motion: recording the episode of %s: %w", camera, err)
	}
	if err := t.cfg.Emit(Change{Kind: Started, Episode: ep}); err != nil {
		if derr := t.cfg.Store.DeleteEpisode(camera); derr != nil {
			t.cfg.OnError("motion: forgetting an episode whose start was not stored", derr)
		}
		return fmt.Errorf("motion: storing the started event of %s: %w", camera, err)
	}
	t.open[camera] = &ep
	return nil
}

// Clear records that source says motion is over for a camera. Only ONVIF says so; a mail
// within the hold keeps the episode open until that mail + hold.
func (t *Tracker) Clear(camera string, source Source) error {
	ep, ok := t.open[camera]
	if !ok || source != SourceONVIF {
		return nil
	}
	now := t.cfg.Now()
	if !ep.LastMail.IsZero() && now.Before(ep.LastMail.Add(t.cfg.Hold)) {
		next := *ep
		next.ONVIF, next.Last = false, next.LastMail
		if err := t.cfg.Store.SaveEpisode(next); err != nil {
			return fmt.Errorf("motion: updating the episode of %s: %w", camera, err)
		}
		*ep = next
		return nil
	}
	return t.stop(ep, now, "onvif")
}

// Expire stops every episode whose hold has run out, each at its last alarm + hold.
func (t *Tracker) Expire() error {
	now := t.cfg.Now()
	var errs []error
	for _, ep := range t.sorted() {
		if end := t.end(ep); !now.Before(end) {
			errs = append(errs, t.stop(ep, end, "hold"))
		}
	}
	return errors.Join(errs...)
}

// Next is when Expire has work next; ok is false when no episode is open.
func (t *Tracker) Next() (at time.Time, ok bool) {
	for _, ep := range t.open {
		if end := t.end(ep); !ok || end.Before(at) {
			at, ok = end, true
		}
	}
	return at, ok
}

// Shutdown stops every open episode now, so a clean stop never leaves a started event without
// its stopped one.
func (t *Tracker) Shutdown() error {
	now := t.cfg.Now()
	var errs []error
	for _, ep := range t.sorted() {
		end := now
		if e := t.end(ep); e.Before(end) {
			end = e
		}
		errs = append(errs, t.stop(ep, end, "shutdown"))
	}
	return errors.Join(errs...)
}

// end is when an episode stops unless another alarm comes.
func (t *Tracker) end(ep *Episode) time.Time { return ep.Last.Add(t.cfg.Hold) }

func (t *Tracker) sorted() []*Episode {
	out := make([]*Episode, 0, len(t.open))
	for _, ep := range t.open {
		out = append(out, ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Camera < out[j].Camera })
	return out
}

// stop emits the stopped event and forgets the episode. When the event cannot be stored the
// episode stays open (and persisted) so that a later Expire tries again.
func (t *Tracker) stop(ep *Episode, end time.Time, why string) error {
	if end.Before(ep.Start) {
		end = ep.Start
	}
	if err := t.cfg.Emit(Change{Kind: Stopped, Episode: *ep, End: end, Why: why}); err != nil {
		return fmt.Errorf("motion: storing the stopped event of %s: %w", ep.Camera, err)
	}
	delete(t.open, ep.Camera)
	if err := t.cfg.Store.DeleteEpisode(ep.Camera); err != nil {
		// The event is queued; a record left behind would repeat it after a restart, which
		// event_id lets a receiver drop. Say so rather than fail the stop.
		t.cfg.OnError("motion: forgetting a stopped episode", err)
	}
	return nil
}
