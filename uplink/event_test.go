package uplink

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"testing"
	"time"
)

var (
	t0      = time.Date(2024, 11, 23, 22, 13, 20, 0, time.UTC) // SPEC §5's example, utc 1732400000
	started = Event{Kind: MotionStarted, ID: 1732400000000001, Media: "gw1-porch", At: t0, Started: t0,
		MotionID: "6f1c", MotionData: "smtp: Motion Detection Alarm"}
)

func stoppedAfter(d time.Duration) Event {
	e := started
	e.Kind, e.ID, e.At = MotionStopped, started.ID+1, t0.Add(d)
	return e
}

// The event_sink objects are SPEC §5's, field for field and unit for unit.
func TestEventMarshalEventSink(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"started", started, `{"event":"stream_motion_started","event_id":1732400000000001,"media":"gw1-porch",` +
			`"utc_ms":1732400000000,"utc":1732400000,"time":"2024-11-23T22:13:20.000Z","server":"fl.example.com",` +
			`"motion_id":"6f1c","motion_data":"smtp: Motion Detection Alarm"}`},
		{"stopped after 31.4 s lasted 31 s", stoppedAfter(31400 * time.Millisecond), `{"event":"stream_motion_stopped",` +
			`"event_id":1732400000000002,"media":"gw1-porch","utc_ms":1732400031400,"utc":1732400031,` +
			`"time":"2024-11-23T22:13:51.400Z","server":"fl.example.com","motion_id":"6f1c",` +
			`"motion_data":"smtp: Motion Detection Alarm","duration":31}`},
		{"a stop at once still lasted a second", stoppedAfter(120 * time.Millisecond), `{"event":"stream_motion_stopped",` +
			`"event_id":1732400000000002,"media":"gw1-porch","utc_ms":1732400000120,"utc":1732400000,` +
			`"time":"2024-11-23T22:13:20.120Z","server":"fl.example.com","motion_id":"6f1c",` +
			`"motion_data":"smtp: Motion Detection Alarm","duration":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.e.MarshalEventSink("fl.example.com")
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}

func TestEventMarshalRejects(t *testing.T) {
	bad := map[string]Event{
		"unknown kind":         {Kind: "motion_started", ID: 1, Media: "m"},
		"event_id zero":        {Kind: MotionStarted, Media: "m"},
		"event_id beyond 2^53": {Kind: MotionStarted, ID: MaxEventID + 1, Media: "m"},
		"no media":             {Kind: MotionStarted, ID: 1},
	}
	for name, e := range bad {
		if _, err := e.MarshalEventSink("s"); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, _, err := e.MarshalEpisode(); err == nil {
			t.Errorf("%s: accepted as an episode", name)
		}
	}
}

// An episode opens with opened_at = updated_at and no closed_at, and the stop closes the same
// episode_id (Central's episode_base.yml: integer id, times in ms).
func TestEventMarshalEpisode(t *testing.T) {
	id1, open, err := started.MarshalEpisode()
	if err != nil {
		t.Fatal(err)
	}
	id2, closed, err := stoppedAfter(31400 * time.Millisecond).MarshalEpisode()
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || id1 <= 0 || id1 > MaxEventID {
		t.Fatalf("episode ids %d and %d: want one id in 1..2^53", id1, id2)
	}
	want := func(closedAt string) string {
		return `{"episode_id":` + jsonInt(id1) + `,"media":"gw1-porch","episode_type":"generic",` +
			`"opened_at":1732400000000,"updated_at":` + map[string]string{"": "1732400000000", "c": "1732400031400"}[closedAt] +
			map[string]string{"": "", "c": `,"closed_at":1732400031400`}[closedAt] + `}`
	}
	if string(open) != want("") {
		t.Errorf("opened:\n got %s\nwant %s", open, want(""))
	}
	if string(closed) != want("c") {
		t.Errorf("closed:\n got %s\nwant %s", closed, want("c"))
	}
	other := started
	other.MotionID = "7a2d"
	if id3, _, _ := other.MarshalEpisode(); id3 == id1 {
		t.Errorf("two episodes of one millisecond share id %d", id1)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func testJPEG(t *testing.T, w, h, quality int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(r.IntN(256)), uint8(x), uint8(y), 255}) // noise compresses badly
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A preview is the alarm's JPEG when it fits, a smaller JPEG when it does not, and nothing when
// the mail's attachment is not a JPEG at all.
func TestPreview(t *testing.T) {
	small := testJPEG(t, 64, 48, 80)
	if got := Preview(small); !bytes.Equal(got, small) {
		t.Errorf("a %d-byte JPEG was changed", len(small))
	}
	big := testJPEG(t, 1280, 720, 95)
	if len(big) <= MaxPreviewBytes {
		t.Fatalf("test JPEG of %d bytes is not over the bound", len(big))
	}
	got := Preview(big)
	if len(got) == 0 || len(got) > MaxPreviewBytes {
		t.Fatalf("preview of %d bytes from %d, want 1..%d", len(got), len(big), MaxPreviewBytes)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(got))
	if err != nil || cfg.Width >= 1280 || cfg.Width*720 != cfg.Height*1280 {
		t.Errorf("preview is %dx%d (%v), want a smaller 16:9 JPEG", cfg.Width, cfg.Height, err)
	}
	if enc := base64.StdEncoding.EncodedLen(len(got)); enc > 64<<10 {
		t.Errorf("base64 preview is %d bytes, over SPEC §5's 64 KB", enc)
	}
	for name, b := range map[string][]byte{"empty": nil, "not a JPEG": []byte("GIF89a..."), "cut JPEG": big[:len(big)/3]} {
		if p := Preview(b); p != nil {
			t.Errorf("%s: preview of %d bytes, want none", name, len(p))
		}
	}
}

// FuzzPreview: whatever a camera attaches, Preview returns nil or a JPEG within the bound.
func FuzzPreview(f *testing.F) {
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe0})
	f.Add([]byte("not a jpeg"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Preview(b)
		if p == nil {
			return
		}
		if len(p) > MaxPreviewBytes {
			t.Fatalf("preview of %d bytes", len(p))
		}
		if _, err := jpeg.DecodeConfig(bytes.NewReader(p)); err != nil {
			t.Fatalf("preview is not a JPEG: %v", err)
		}
	})
}

type memSettings map[string][]byte

func (m memSettings) Get(k string) ([]byte, bool, error) { v, ok := m[k]; return v, ok, nil }
func (m memSettings) Put(k string, v []byte) error       { m[k] = bytes.Clone(v); return nil }

// event_id keeps increasing across a restart even when the clock went back meanwhile, and
// stays below 2^53; the store is written once per block, not per event.
func TestEventIDsIncreaseAcrossRestarts(t *testing.T) {
	st := memSettings{}
	now := t0
	clock := func() time.Time { return now }
	g, err := NewEventIDs(st, clock)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 2000 {
		id, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if id <= last || id > MaxEventID {
			t.Fatalf("id %d after %d", id, last)
		}
		if i == 0 && id != t0.UnixMilli()*1000 {
			t.Errorf("first id %d, want utc_ms*1000 = %d", id, t0.UnixMilli()*1000)
		}
		last = id
	}
	now = t0.Add(-time.Hour) // the gateway restarts with its clock an hour behind
	g2, err := NewEventIDs(st, clock)
	if err != nil {
		t.Fatal(err)
	}
	id, err := g2.Next()
	if err != nil || id <= last {
		t.Fatalf("after a restart: id %d (%v), want above %d", id, err, last)
	}
	st[settingEventIDs] = []byte("garbage")
	if _, err := NewEventIDs(st, clock); err == nil {
		t.Error("a stored reservation that is not a number was accepted")
	}
}
