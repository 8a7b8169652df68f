package rtmp

import (
	"bytes"
	"encoding/hex"
	"net/url"
	"reflect"
	"testing"

	"github.com/abema/go-mp4"
)

func TestAMFRoundTrip(t *testing.T) {
	for _, v := range []any{
		nil,
		1.5,
		true,
		"live/x?token=1",
		amfObj{{"level", "status"}, {"code", "NetStream.Publish.Start"}, {"n", 3.0}},
		amfObj{{"nested", amfObj{{"deep", false}}}},
		[]any{"a", 2.0},
	} {
		b := appendAMF(nil, v)
		got, err := decodeAMF(b)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], v) {
			t.Errorf("round trip of %#v gave %#v", v, got)
		}
	}
	// An ECMA array decodes as an object: readers need not tell them apart.
	got, err := decodeAMF(appendAMF(nil, amfECMA{{"videocodecid", 7.0}}))
	if err != nil || !reflect.DeepEqual(got, []any{amfObj{{"videocodecid", 7.0}}}) {
		t.Errorf("ECMA array decoded as %#v, %v", got, err)
	}
}

func TestAMFRejects(t *testing.T) {
	deep := []byte{}
	for range 20 {
		deep = append(deep, amfObject, 0, 1, 'k')
	}
	for name, b := range map[string][]byte{
		"truncated number":  {amfNumber, 0, 0},
		"string past end":   {amfString, 0, 9, 'a'},
		"unterminated obj":  {amfObject, 0, 1, 'k', amfNull},
		"unknown type":      {0x11},
		"nested too deep":   deep,
		"huge strict array": {amfStrictArray, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := decodeAMF(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// The chunk writer's output, read back by the chunk reader, gives the same messages,
// including the extended timestamp on every chunk of a long message.
func TestChunkRoundTrip(t *testing.T) {
	var b []byte
	msgs := []rtmpMessage{
		{typ: rtmpCommandAMF0, streamID: 0, ts: 0, body: bytes.Repeat([]byte{1}, 300)},
		{typ: rtmpVideo, streamID: 1, ts: 0x1000000, body: bytes.Repeat([]byte{2}, 1000)},
		{typ: rtmpAudio, streamID: 1, ts: 40, body: []byte{3}},
	}
	for _, m := range msgs {
		b = appendChunks(b, 128, csidVideo, m.typ, m.streamID, m.ts, m.body)
	}
	cr := newChunkReader(bytes.NewReader(b))
	for _, want := range msgs {
		got, err := cr.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read %d-byte type %d at %d, want %d-byte type %d at %d",
				len(got.body), got.typ, got.ts, len(want.body), want.typ, want.ts)
		}
	}
}

func TestChunkReaderBounds(t *testing.T) {
	for name, b := range map[string][]byte{
		"type 3 first":  {0xc3, 1, 2, 3},
		"huge message":  {0x03, 0, 0, 0, 0xff, 0xff, 0xff, rtmpVideo, 0, 0, 0, 0},
		"truncated hdr": {0x03, 0, 0},
	} {
		if _, err := newChunkReader(bytes.NewReader(b)).readMessage(); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}

func TestRTMPTarget(t *testing.T) {
	for _, tc := range []struct {
		url, addr, app, tcURL, name string
	}{
		{"rtmp://fl.example.com/live/cam1", "fl.example.com:1935", "live", "rtmp://fl.example.com/live", "cam1"},
		{"rtmps://fl.example.com/live/cam1?password=s3", "fl.example.com:443", "live", "rtmps://fl.example.com/live",
			"cam1?password=s3"},
		{"rtmp://u:p@10.0.0.1:1936/app/a/b", "10.0.0.1:1936", "app", "rtmp://10.0.0.1:1936/app", "a/b"},
		// Flussonic's three forms: the name alone is both application and stream.
		{"rtmp://fl.example.com/cam1?password=s3", "fl.example.com:1935", "cam1", "rtmp://fl.example.com/cam1",
			"cam1?password=s3"},
		{"rtmp://fl.example.com/static/cam1?password=s3", "fl.example.com:1935", "static", "rtmp://fl.example.com/static",
			"cam1?password=s3"},
		{"rtmp://fl.example.com/live/cam1", "fl.example.com:1935", "live", "rtmp://fl.example.com/live", "cam1"},
	} {
		u, _ := url.Parse(tc.url)
		got, err := parseRTMPTarget(u)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got.addr != tc.addr || got.app != tc.app || got.tcURL != tc.tcURL || got.name != tc.name {
			t.Errorf("%s: got %+v", tc.url, got)
		}
	}
	for _, bad := range []string{"rtmp://host/", "rtmp://host", "rtmp://host/app/", "http://host/app/x"} {
		u, _ := url.Parse(bad)
		if _, err := parseRTMPTarget(u); err == nil {
			t.Errorf("%s: a URL without a stream name was accepted", bad)
		}
	}
}

// The decoder configuration records are read back with go-mp4 (which gortmplib and
// mediamtx use), an independent parser.
func TestDecoderConfigRecords(t *testing.T) {
	sps := mustHex(t, "6742c01ed9005005bb011000000300100000030320f162e480")
	pps := mustHex(t, "68cb83cb20")
	avcc, err := avcDecoderConfig(sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	var a mp4.AVCDecoderConfiguration
	a.SetType(mp4.BoxTypeAvcC())
	if _, err := mp4.Unmarshal(bytes.NewReader(avcc), uint64(len(avcc)), &a, mp4.Context{}); err != nil {
		t.Fatalf("avcC: %v", err)
	}
	if a.Profile != 66 || a.Level != 30 || !bytes.Equal(a.SequenceParameterSets[0].NALUnit, sps) ||
		!bytes.Equal(a.PictureParameterSets[0].NALUnit, pps) || a.LengthSizeMinusOne != 3 {
		t.Errorf("avcC read back as %+v", a)
	}

}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzAMFDecode(f *testing.F) {
	f.Add(appendAMF(appendAMF(appendAMF(nil, "_result"), 1), amfObj{{"code", "NetConnection.Connect.Success"}}))
	f.Add(appendAMF(nil, amfECMA{{"a", []any{1.0, "x"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := decodeAMF(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to bytes that decode to the same (compared as bytes: NaN is
		// a number AMF0 can carry and DeepEqual cannot compare).
		enc := func(vals []any) []byte {
			var b []byte
			for _, v := range vals {
				b = appendAMF(b, v)
			}
			return b
		}
		again := enc(vals)
		vals2, err := decodeAMF(again)
		if err != nil || !bytes.Equal(again, enc(vals2)) {
			t.Fatalf("re-encoding %#v is not stable: %#v (%v)", vals, vals2, err)
		}
	})
}

func FuzzChunkReader(f *testing.F) {
	b := appendChunks(nil, 64, csidCommand, rtmpCommandAMF0, 0, 0, appendAMF(nil, "onStatus"))
	b = appendChunks(b, 64, csidControl, rtmpSetChunkSize, 0, 0, []byte{0, 0, 0, 16})
	b = appendChunks(b, 64, csidVideo, rtmpVideo, 1, 0xffffff, bytes.Repeat([]byte{9}, 200))
	f.Add(b)
	f.Add([]byte{0x43, 0, 0, 1, 0, 0, 4, rtmpAck, 0, 0, 0, 1, 0x83, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := newChunkReader(bytes.NewReader(b))
		for range 1000 {
			m, err := cr.readMessage()
			if err != nil {
				return
			}
			if len(m.body) > rtmpMaxMessage {
				t.Fatalf("message of %d bytes", len(m.body))
			}
		}
	})
}
