package uplink

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Event kinds, the names Flussonic's event schemas give motion events in every version
// (openapi/flussonic/components/schemas/events/motion_started.yml, motion_stopped.yml).
const (
	MotionStarted = "stream_motion_started"
	MotionStopped = "stream_motion_stopped"
)

// MaxEventID bounds event_id: an integer a JSON receiver holds exactly in a float64 (2^53).
const MaxEventID = 1<<53 - 1

// Event is one motion event (SPEC §5), rendered per sink by MarshalEventSink or MarshalEpisode.
type Event struct {
	Kind       string // MotionStarted or MotionStopped
	ID         int64  // event_id, increasing per gateway (EventIDs); (media, event_id) names the event
	Media      string // the Flussonic stream name
	At         time.Time
	MotionID   string // shared by a started/stopped pair
	MotionData string
	// Started is when the episode began: the stopped event's duration, and an episode's
	// opened_at and episode_id, come from it.
	Started time.Time
	// Snapshot is the alarm's JPEG, if it brought one; an episode carries it as its preview,
	// scaled to fit (Preview).
	Snapshot []byte
}

// wireEvent fixes the field names and order of SPEC §5, which follow Flussonic's
// motion_base.yml (utc seconds, time RFC 3339, motion_id, motion_data), event_default.yml
// (utc_ms, integer event_id) and event_media.yml (media).
type wireEvent struct {
	Event      string `json:"event"`
	EventID    int64  `json:"event_id"`
	Media      string `json:"media"`
	UTCms      int64  `json:"utc_ms"`
	UTC        int64  `json:"utc"`
	Time       string `json:"time"`
	Server     string `json:"server"`
	MotionID   string `json:"motion_id"`
	MotionData string `json:"motion_data"`
	Duration   *int64 `json:"duration,omitempty"`
}

// timeLayout is RFC 3339 in UTC with milliseconds, as SPEC §5's example.
const timeLayout = "2006-01-02T15:04:05.000Z"

func (e Event) check() error {
	if e.Kind != MotionStarted && e.Kind != MotionStopped {
		return fmt.Errorf("event: unknown kind %q", e.Kind)
	}
	if e.ID <= 0 || e.ID > MaxEventID {
		return fmt.Errorf("event: event_id %d is not in 1..2^53-1", e.ID)
	}
	if e.Media == "" {
		return errors.New("event: no media")
	}
	return nil
}

// DurationSeconds is how long the motion lasted in whole seconds, at least 1: Flussonic's
// motion_stopped "duration" is an integer of seconds, and a stop always follows a start.
func (e Event) DurationSeconds() int64 {
	d := int64(e.At.Sub(e.Started).Round(time.Second) / time.Second)
	return max(d, 1)
}

// MarshalEventSink renders e as one JSON object of Flussonic's event_sink format, with server
// naming the streamer the stream lives on.
func (e Event) MarshalEventSink(server string) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	at := e.At.UTC()
	w := wireEvent{
		Event:      e.Kind,
		EventID:    e.ID,
		Media:      e.Media,
		UTCms:      at.UnixMilli(),
		UTC:        at.Unix(),
		Time:       at.Format(timeLayout),
		Server:     server,
		MotionID:   e.MotionID,
		MotionData: e.MotionData,
	}
	if e.Kind == MotionStopped {
		d := e.DurationSeconds()
		w.Duration = &d
	}
	return json.Marshal(w)
}

// Episode is one PUT body of Flussonic Central's episodes API
// (openapi/flussonic/components/schemas/episodes/episode_base.yml, episode_generic.yml;
// paths/central/episode.yml): times in ms, closed_at once the motion stopped.
type Episode struct {
	EpisodeID   int64  `json:"episode_id"`
	Media       string `json:"media"`
	EpisodeType string `json:"episode_type"`
	OpenedAt    int64  `json:"opened_at"`
	UpdatedAt   int64  `json:"updated_at"`
	ClosedAt    *int64 `json:"closed_at,omitempty"`
	Preview     string `json:"preview,omitempty"`
}

// EpisodeID is the integer id of the episode that began at started with motionID. The schema's
// format is "snowflake_id": Central's own ids put the time in the high bits, so this does the
// same (ms since the Unix epoch, shifted by 10) and fills the low bits from the motion id, which
// keeps two cameras' episodes of the same millisecond apart and stays below 2^53 until 2248.
func EpisodeID(started time.Time, motionID string) int64 {
	h := fnv.New32a()
	h.Write([]byte(motionID))
	return started.UnixMilli()<<10 | int64(h.Sum32()&0x3ff)
}

// MarshalEpisode renders e as the episode it opens (started) or closes (stopped).
func (e Event) MarshalEpisode() (id int64, body []byte, err error) {
	if err := e.check(); err != nil {
		return 0, nil, err
	}
	if e.Started.IsZero() {
		return 0, nil, errors.New("event: episode without its start time")
	}
	ep := Episode{
		EpisodeID:   EpisodeID(e.Started, e.MotionID),
		Media:       e.Media,
		EpisodeType: "generic",
		OpenedAt:    e.Started.UnixMilli(),
		UpdatedAt:   e.At.UnixMilli(),
	}
	if e.Kind == MotionStopped {
		c := e.At.UnixMilli()
		ep.ClosedAt = &c
	}
	if p := Preview(e.Snapshot); len(p) > 0 {
		ep.Preview = base64.StdEncoding.EncodeToString(p)
	}
	body, err = json.Marshal(ep)
	return ep.EpisodeID, body, err
}
