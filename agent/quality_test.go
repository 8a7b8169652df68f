package agent

import (
	"testing"

	"github.com/camgate/camgate/onvif"
)

// A camera steps down to its configured substream_url, else to its ONVIF device's second
// profile; one that already relays its substream, or has none, keeps its stream.
func TestSubstreamOfACamera(t *testing.T) {
	const main, second = "rtsp://10.0.0.20/main", "rtsp://10.0.0.20/second"
	device := resolution{dev: &onvif.Device{MainStream: main, SubStream: second}, stream: main}
	for _, tc := range []struct {
		name string
		e    cameraEntry
		want string
	}{
		{"configured", cameraEntry{conf: CameraConfig{URL: main, SubstreamURL: "rtsp://10.0.0.20/cfg"}},
			"rtsp://10.0.0.20/cfg"},
		{"configured beats ONVIF", cameraEntry{conf: CameraConfig{URL: "http://10.0.0.20/onvif/device_service",
			SubstreamURL: "rtsp://10.0.0.20/cfg"}, resolver: &streamResolver{}, resolved: device}, "rtsp://10.0.0.20/cfg"},
		{"ONVIF second profile", cameraEntry{conf: CameraConfig{URL: "http://10.0.0.20/onvif/device_service"},
			resolver: &streamResolver{}, resolved: device}, second},
		{"already on the substream", cameraEntry{conf: CameraConfig{URL: "http://10.0.0.20/onvif/device_service",
			Substream: true}, resolver: &streamResolver{}, resolved: device}, ""},
		{"plain RTSP camera", cameraEntry{conf: CameraConfig{URL: main}}, ""},
		{"ONVIF with one profile", cameraEntry{conf: CameraConfig{URL: "http://10.0.0.20/onvif/device_service"},
			resolver: &streamResolver{}, resolved: resolution{dev: &onvif.Device{MainStream: main}, stream: main}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := substreamOf(&tc.e, main); got != tc.want {
				t.Errorf("substream %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubstreamURLAndPriorityAreTaken(t *testing.T) {
	cfg, err := ParseConfig([]byte(
		"cameras:\n  - {id: yard, url: 'rtsp://h/1', substream_url: 'rtsp://h/2', priority: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cameras[0]; c.SubstreamURL != "rtsp://h/2" || c.Priority != 3 {
		t.Errorf("camera %+v", c)
	}
}
