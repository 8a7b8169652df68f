package uplink

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Settings is the piece of store an EventIDs keeps its reservation in (store.Table has it).
type Settings interface {
	Get(key string) ([]byte, bool, error)
	Put(key string, value []byte) error
}

const (
	settingEventIDs = "event_id_reserved"
	// idsPerMs spaces event ids by time, as SPEC §5's example (utc_ms*1000 + n): about a
	// thousand ids per millisecond before they run ahead of the clock.
	idsPerMs = 1000
	// idBlock is how many ids one persisted reservation covers, so that the store is written
	// about once every 100 s of events, not once per event.
	idBlock = 100_000_000
)

// EventIDs hands out event_id values: integers below 2^53, increasing per gateway, across
// restarts too (SPEC §5). An id is at least utc_ms*1000, and above every id reserved before, so
// a clock set back after a restart cannot repeat one: a block of ids is reserved in the store
// before any of it is handed out.
type EventIDs struct {
	st  Settings
	now func() time.Time

	mu       sync.Mutex // held only by callers of Next; the store write is once per block
	last     int64
	reserved int64
}

// NewEventIDs loads the reservation of an earlier run; now nil means time.Now.
func NewEventIDs(st Settings, now func() time.Time) (*EventIDs, error) {
	if now == nil {
		now = time.Now
	}
	g := &EventIDs{st: st, now: now}
	b, ok, err := st.Get(settingEventIDs)
	if err != nil {
		return nil, fmt.Errorf("event ids: %w", err)
	}
	if ok {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil || n < 0 || n > MaxEventID {
			return nil, fmt.Errorf("event ids: stored reservation %q is not an id", b)
		}
		g.last, g.reserved = n, n
	}
	return g, nil
}

// Next returns the next id.
func (g *EventIDs) Next() (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := max(g.last+1, g.now().UnixMilli()*idsPerMs)
	if id > MaxEventID {
		return 0, fmt.Errorf("event ids: %d is past 2^53", id)
	}
	if id > g.reserved {
		r := min(id+idBlock, MaxEventID)
		if err := g.st.Put(settingEventIDs, strconv.AppendInt(nil, r, 10)); err != nil {
			return 0, fmt.Errorf("event ids: reserving: %w", err)
		}
		g.reserved = r
	}
	g.last = id
	return id, nil
}
