package store

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2025, 11, 24, 3, 4, 5, 6, time.UTC)
	for _, m := range []Message{
		{Class: ClassTelemetry, Payload: []byte(`{"uptime_s":1}`)},
		{Class: ClassEvent, Topic: "camgate/gw/cameras/porch/events", Payload: []byte(`[{"event":"stream_motion_started"}]`)},
		{Class: ClassRegistration, Topic: "camgate/gw/cameras/porch/config", Retain: true},
		{Class: ClassRegistration, Topic: string(make([]byte, 300)), Retain: true, Payload: make([]byte, 70000)},
		{Class: ClassEvent, Topic: "camgate/gw/cameras/porch/snapshot", Retain: true, Latest: true,
			file: payloadRef{name: strings.Repeat("7e", payloadNameLen/2), size: 263483, crc: 0xdeadbeef}},
	} {
		m.Seq, m.Enqueued = 42, at
		got, err := decodeRecord(42, encodeRecord(&m))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", m, err)
		}
		if got.Seq != m.Seq || got.Class != m.Class || got.Topic != m.Topic || got.Retain != m.Retain ||
			!bytes.Equal(got.Payload, m.Payload) || !got.Enqueued.Equal(m.Enqueued) || got.file != m.file {
			t.Errorf("round trip changed the message:\n got %+v\nwant %+v", got, m)
		}
		if got.size() != m.size() {
			t.Errorf("size %d after round trip, was %d", got.size(), m.size())
		}
	}
}

func TestRecordRejectsMalformed(t *testing.T) {
	good := encodeRecord(&Message{Class: ClassEvent, Topic: "t", Payload: []byte("p")})
	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"header only", good[:recordHeaderLen]},
		{"unknown format", append([]byte{2}, good[1:]...)},
		{"class 0", append([]byte{1, 0}, good[2:]...)},
		{"class 9", append([]byte{1, 9}, good[2:]...)},
		{"unknown flag", append([]byte{1, 2, 0x80}, good[3:]...)},
		{"topic longer than the record", append(good[:recordHeaderLen:recordHeaderLen], 0x7f, 'a')},
		{"file flag without a reference", append([]byte{1, 2, flagFile}, good[3:]...)},
		{"file reference cut short", encodeRecord(&Message{Class: ClassEvent,
			file: payloadRef{name: strings.Repeat("7e", payloadNameLen/2), size: 1}})[:recordHeaderLen+1+1+4+10]},
		{"file name not hex", append(encodeRecord(&Message{Class: ClassEvent,
			file: payloadRef{name: strings.Repeat("7e", payloadNameLen/2), size: 1}})[:recordHeaderLen+1+1+4],
			strings.Repeat("../", payloadNameLen/3)+"xx"...)},
		{"varint overflow", append(good[:recordHeaderLen:recordHeaderLen], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0x01)},
	} {
		if _, err := decodeRecord(1, tc.rec); err == nil {
			t.Errorf("%s: decoded without error", tc.name)
		}
	}
}

// Whatever bytes a damaged file holds, decoding must not panic, and what decodes re-encodes to a
// record that decodes to the same message.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(&Message{Class: ClassEvent, Topic: "camgate/gw/cameras/porch/events", Payload: []byte(`[{}]`)}))
	f.Add(encodeRecord(&Message{Class: ClassRegistration, Retain: true}))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00})
	f.Add(encodeRecord(&Message{Class: ClassEvent, Topic: "cameras/porch/snapshot", Latest: true,
		file: payloadRef{name: strings.Repeat("0a", payloadNameLen/2), size: 263483, crc: 7}}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, err := decodeRecord(7, rec)
		if err != nil {
			return
		}
		again, err := decodeRecord(7, encodeRecord(&m))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again.Class != m.Class || again.Topic != m.Topic || again.Retain != m.Retain ||
			!bytes.Equal(again.Payload, m.Payload) || !again.Enqueued.Equal(m.Enqueued) || again.file != m.file ||
			again.size() != m.size() {
			t.Fatalf("re-encoding changed %+v into %+v", m, again)
		}
	})
}
