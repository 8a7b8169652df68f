package uplink

import (
	"encoding/json"
	"fmt"
)

// Event kinds, as the agent names them independently of a sink's naming.
const (
	MotionStarted = "motion_started"
	MotionStopped = "motion_stopped"
)

// Event is one motion event in the Flussonic event_sink format (SPEC §5).
type Event struct {
	Kind       string // MotionStarted or MotionStopped
	ID         string // event_id: lets the receiver drop duplicates of at-least-once delivery
	Media      string // the Flussonic stream name
	UTCms      int64
	Server     string // the gateway id
	MotionID   string // shared by a started/stopped pair
	MotionData string
	DurationMs int64 // stopped only
}

// wireEvent fixes the field names and order of SPEC §5.
type wireEvent struct {
	Event      string `json:"event"`
	EventID    string `json:"event_id"`
	Media      string `json:"media"`
	UTCms      int64  `json:"utc_ms"`
	Server     string `json:"server"`
	MotionID   string `json:"motion_id"`
	MotionData string `json:"motion_data"`
	Duration   *int64 `json:"duration,omitempty"`
}

// MarshalNaming renders e as one JSON object in a sink's naming: "v22" prefixes the event name with
// "stream_" (stream_motion_started), "v23" does not (motion_started). Only a stopped event carries
// "duration".
func (e Event) MarshalNaming(naming string) ([]byte, error) {
	if e.Kind != MotionStarted && e.Kind != MotionStopped {
		return nil, fmt.Errorf("event: unknown kind %q", e.Kind)
	}
	w := wireEvent{
		Event:      e.Kind,
		EventID:    e.ID,
		Media:      e.Media,
		UTCms:      e.UTCms,
		Server:     e.Server,
		MotionID:   e.MotionID,
		MotionData: e.MotionData,
	}
	switch naming {
	case "v22":
		w.Event = "stream_" + e.Kind
	case "v23":
	default:
		return nil, fmt.Errorf("event: unknown naming %q (want v22 or v23)", naming)
	}
	if e.Kind == MotionStopped {
		d := e.DurationMs
		w.Duration = &d
	}
	return json.Marshal(w)
}
