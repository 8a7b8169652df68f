package motion

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// memStore keeps episodes in memory; fail makes every write fail, as a full disk does.
type memStore struct {
	eps  map[string]Episode
	fail error
}

func (m *memStore) SaveEpisode(ep Episode) error {
	if m.fail != nil {
		return m.fail
	}
	m.eps[ep.Camera] = ep
	return nil
}

func (m *memStore) DeleteEpisode(camera string) error {
	if m.fail != nil {
		return m.fail
	}
	delete(m.eps, camera)
	return nil
}

func (m *memStore) Episodes() ([]Episode, error) {
	var out []Episode
	for _, ep := range m.eps {
		out = append(out, ep)
	}
	return out, nil
}

// rig is a Tracker on a hand-stepped clock that records what it emits.
type rig struct {
	t       *testing.T
	now     time.Time
	store   *memStore
	changes []Change
	emitErr error
	tr      *Tracker
}

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

const hold = 30 * time.Second

func newRig(t *testing.T, store *memStore) *rig {
	r := &rig{t: t, now: t0, store: store}
	n := 0
	tr, err := New(Config{Hold: hold, Now: func() time.Time { return r.now }, Store: store,
		NewID: func() string { n++; return fmt.Sprintf("m%d", n) },
		Emit: func(c Change) error {
			if r.emitErr != nil {
				return r.emitErr
			}
			r.changes = append(r.changes, c)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.tr = tr
	return r
}

func (r *rig) at(d time.Duration) *rig { r.now = t0.Add(d); return r }

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

// summary writes the changes as "started m1 porch", "stopped m1 porch 40s hold".
func (r *rig) summary() []string {
	var out []string
	for _, c := range r.changes {
		if c.Kind == Started {
			out = append(out, fmt.Sprintf("started %s %s", c.Episode.MotionID, c.Episode.Camera))
		} else {
			out = append(out, fmt.Sprintf("stopped %s %s %s %s", c.Episode.MotionID, c.Episode.Camera, c.Duration(), c.Why))
		}
	}
	return out
}

func (r *rig) want(want ...string) {
	r.t.Helper()
	got := r.summary()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
}

func TestSeveralAlarmsInsideOneHoldAreOneEpisode(t *testing.T) {
	r := newRig(t, &memStore{eps: map[string]Episode{}})
	r.must(r.tr.Alarm("porch", SourceMail, "smtp: Motion"))
	r.at(10 * time.Second).must(r.tr.Alarm("porch", SourceMail, "smtp: Motion"))
	r.at(25 * time.Second).must(r.tr.Alarm("porch", SourceMail, "smtp: Motion"))
	r.at(54 * time.Second).must(r.tr.Expire())
	r.want("started m1 porch")
	if at, ok := r.tr.Next(); !ok || !at.Equal(t0.Add(55*time.Second)) {
		t.Errorf("Next = %v %v, want last alarm + hold", at, ok)
	}
	// Expire called late still ends the episode at last alarm + hold.
	r.at(90 * time.Second).must(r.tr.Expire())
	r.want("started m1 porch", "stopped m1 porch 55s hold")
}

func TestAnAlarmAfterTheHoldStartsANewEpisode(t *testing.T) {
	r := newRig(t, &memStore{eps: map[string]Episode{}})
	r.must(r.tr.Alarm("porch", SourceMail, ""))
	r.at(31 * time.Second).must(r.tr.Alarm("porch", SourceMail, "")) // Expire has not run yet
	r.want("started m1 porch", "stopped m1 porch 30s hold", "started m2 porch")
}

func TestCamerasHaveEpisodesOfTheirOwn(t *testing.T) {
	r := newRig(t, &memStore{eps: map[string]Episode{}})
	r.must(r.tr.Alarm("porch", SourceMail, ""))
	r.at(20 * time.Second).must(r.tr.Alarm("yard", SourceMail, ""))
	r.at(35 * time.Second).must(r.tr.Expire())
	r.want("started m1 porch", "started m2 yard", "stopped m1 porch 30s hold")
}

func TestONVIFOffStopsAtOnceUnlessAMailHolds(t *testing.T) {
	r := newRig(t, &memStore{eps: map[string]Episode{}})
	r.must(r.tr.Alarm("porch", SourceONVIF, "onvif: MotionAlarm"))
	r.at(12 * time.Second).must(r.tr.Clear("porch", SourceONVIF))
	r.want("started m1 porch", "stopped m1 porch 12s onvif")

	// A mail inside the hold speaks for the episode after ONVIF's off: mail + hold.
	r.changes = nil
	r.at(100 * time.Second).must(r.tr.Alarm("porch", SourceONVIF, ""))
	r.at(105 * time.Second).must(r.tr.Alarm("porch", SourceMail, ""))
	r.at(110 * time.Second).must(r.tr.Clear("porch", SourceONVIF))
	r.at(134 * time.Second).must(r.tr.Expire())
	r.want("started m2 porch")
	r.at(135 * time.Second).must(r.tr.Expire())
	r.want("started m2 porch", "stopped m2 porch 35s hold")

	// A mail's "off" does not exist; Clear from mail is ignored.
	r.changes = nil
	r.at(200 * time.Second).must(r.tr.Alarm("porch", SourceMail, ""))
	r.must(r.tr.Clear("porch", SourceMail))
	r.want("started m3 porch")
}

func TestShutdownStopsEveryOpenEpisodeNow(t *testing.T) {
	r := newRig(t, &memStore{eps: map[string]Episode{}})
	r.must(r.tr.Alarm("porch", SourceMail, ""))
	r.at(5 * time.Second).must(r.tr.Alarm("yard", SourceONVIF, ""))
	r.at(8 * time.Second).must(r.tr.Shutdown())
	r.want("started m1 porch", "started m2 yard", "stopped m1 porch 8s shutdown", "stopped m2 yard 3s shutdown")
	if len(r.store.eps) != 0 {
		t.Errorf("store still holds %v after shutdown", r.store.eps)
	}
}

func TestRestartEndsEpisodesAtLastAlarmPlusHold(t *testing.T) {
	store := &memStore{eps: map[string]Episode{}}
	r := newRig(t, store)
	r.must(r.tr.Alarm("porch", SourceMail, "smtp: Motion"))
	r.at(10 * time.Second).must(r.tr.Alarm("porch", SourceMail, ""))
	r.at(50 * time.Second).must(r.tr.Alarm("yard", SourceMail, ""))
	// SIGKILL: the tracker is gone, the store is not. A new run starts at 70 s.
	r2 := newRig(t, store)
	r2.at(70 * time.Second).must(r2.tr.Restore())
	r2.want("stopped m1 porch 40s hold")
	if open := r2.tr.Open(); len(open) != 1 || open[0].Camera != "yard" {
		t.Fatalf("open after restore: %v, want yard's episode still open", open)
	}
	r2.at(75 * time.Second).must(r2.tr.Alarm("yard", SourceMail, "")) // joins the restored episode
	r2.at(115 * time.Second).must(r2.tr.Expire())
	r2.want("stopped m1 porch 40s hold", "stopped m2 yard 55s hold")
}

func TestAnAlarmThatCannotBeStoredLeavesNoEpisode(t *testing.T) {
	full := errors.New("no space left on device")
	for _, tc := range []struct {
		name       string
		storeFails bool
		emitFails  bool
	}{
		{"episode record", true, false},
		{"started event", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &memStore{eps: map[string]Episode{}}
			r := newRig(t, store)
			if tc.storeFails {
				store.fail = full
			}
			if tc.emitFails {
				r.emitErr = full
			}
			if err := r.tr.Alarm("porch", SourceMail, ""); !errors.Is(err, full) {
				t.Fatalf("Alarm = %v, want the store's error", err)
			}
			if len(r.tr.Open()) != 0 || len(store.eps) != 0 {
				t.Fatalf("an episode is open after a failed start: %v / %v", r.tr.Open(), store.eps)
			}
			// Space is freed, the camera sends its mail again: one episode.
			store.fail, r.emitErr = nil, nil
			r.at(3 * time.Second).must(r.tr.Alarm("porch", SourceMail, ""))
			r.at(40 * time.Second).must(r.tr.Expire())
			r.want("started m2 porch", "stopped m2 porch 30s hold")
		})
	}
}

func TestAStopThatCannotBeStoredIsTriedAgain(t *testing.T) {
	r := newRig(t, &memStore{eps: map[string]Episode{}})
	r.must(r.tr.Alarm("porch", SourceMail, ""))
	r.emitErr = errors.New("disk full")
	if err := r.at(31 * time.Second).tr.Expire(); err == nil {
		t.Fatal("Expire hid the failed stop")
	}
	r.emitErr = nil
	r.at(60 * time.Second).must(r.tr.Expire())
	r.want("started m1 porch", "stopped m1 porch 30s hold")
}
