package rtmp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net/url"
	"reflect"
	"testing"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

func TestAMFRoundTrip(t *testing.T) {
	for _, v := range []any{
		nil,
		1.5,
		true,
		"live/x?token=1",
		amfObj{{"level", "status"}, {"code", "NetStream.Publish.Start"}, {"n", 3.0}},
		amfObj{{"nested", amfObj{{"deep", false}}}},
		[]any{"hvc1", "Opus"},
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
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	cw := chunkWriter{w: bw, chunkSize: 128}
	msgs := []rtmpMessage{
		{typ: rtmpCommandAMF0, streamID: 0, ts: 0, body: bytes.Repeat([]byte{1}, 300)},
		{typ: rtmpVideo, streamID: 1, ts: 0x1000000, body: bytes.Repeat([]byte{2}, 1000)},
		{typ: rtmpAudio, streamID: 1, ts: 40, body: []byte{3}},
	}
	for _, m := range msgs {
		if err := cw.writeMessage(csidVideo, m.typ, m.streamID, m.ts, m.body); err != nil {
			t.Fatal(err)
		}
	}
	_ = bw.Flush()
	cr := newChunkReader(&buf)
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
		{"rtmps://fl.example.com/live/cam1?password=s3", "fl.example.com:443", "live", "rtmps://fl.example.com/live", "cam1?password=s3"},
		{"rtmp://u:p@10.0.0.1:1936/app/a/b", "10.0.0.1:1936", "app", "rtmp://10.0.0.1:1936/app", "a/b"},
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
	u, _ := url.Parse("rtmp://host/onlyapp")
	if _, err := parseRTMPTarget(u); err == nil {
		t.Error("a URL without a stream name was accepted")
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

	// This SPS has an emulation prevention byte inside profile_tier_level.
	vps := mustHex(t, "40010c01ffff022000000300b0000003000003007b18b024")
	hsps := mustHex(t, "420101022000000300b0000003000003007ba0078200887db6718b92448053888892cf24a69272c9124922dc91aa48fca223ff000100016a02020201")
	hpps := mustHex(t, "4401c0252f053240")
	hvcc, err := hevcDecoderConfig(vps, hsps, hpps)
	if err != nil {
		t.Fatal(err)
	}
	var h mp4.HvcC
	if _, err := mp4.Unmarshal(bytes.NewReader(hvcc), uint64(len(hvcc)), &h, mp4.Context{}); err != nil {
		t.Fatalf("hvcC: %v", err)
	}
	var s h265.SPS
	_ = s.Unmarshal(hsps)
	if h.GeneralProfileIdc != s.ProfileTierLevel.GeneralProfileIdc || h.GeneralLevelIdc != s.ProfileTierLevel.GeneralLevelIdc ||
		h.GeneralProfileCompatibility != s.ProfileTierLevel.GeneralProfileCompatibilityFlag ||
		len(h.NaluArrays) != 3 || !bytes.Equal(h.NaluArrays[1].Nalus[0].NALUnit, hsps) || h.LengthSizeMinusOne != 3 {
		t.Errorf("hvcC read back as %+v", h)
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
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	cw := chunkWriter{w: bw, chunkSize: 64}
	_ = cw.writeMessage(csidCommand, rtmpCommandAMF0, 0, 0, appendAMF(nil, "onStatus"))
	_ = cw.writeMessage(csidControl, rtmpSetChunkSize, 0, 0, []byte{0, 0, 0, 16})
	_ = cw.writeMessage(csidVideo, rtmpVideo, 1, 0xffffff, bytes.Repeat([]byte{9}, 200))
	_ = bw.Flush()
	f.Add(buf.Bytes())
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
