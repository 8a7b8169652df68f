package uplink

import (
	"testing"
)

func TestEventMarshalNaming(t *testing.T) {
	started := Event{Kind: MotionStarted, ID: "e1", Media: "gw1-porch", UTCms: 1732400000000, Server: "gw1",
		MotionID: "6f1c", MotionData: "smtp: Motion Detection Alarm"}
	stopped := started
	stopped.Kind, stopped.ID, stopped.DurationMs = MotionStopped, "e2", 31000
	tests := []struct {
		name   string
		e      Event
		naming string
		want   string
	}{
		{"v22 started", started, "v22", `{"event":"stream_motion_started","event_id":"e1","media":"gw1-porch","utc_ms":1732400000000,"server":"gw1","motion_id":"6f1c","motion_data":"smtp: Motion Detection Alarm"}`},
		{"v22 stopped", stopped, "v22", `{"event":"stream_motion_stopped","event_id":"e2","media":"gw1-porch","utc_ms":1732400000000,"server":"gw1","motion_id":"6f1c","motion_data":"smtp: Motion Detection Alarm","duration":31000}`},
		{"v23 started", started, "v23", `{"event":"motion_started","event_id":"e1","media":"gw1-porch","utc_ms":1732400000000,"server":"gw1","motion_id":"6f1c","motion_data":"smtp: Motion Detection Alarm"}`},
		{"v23 stopped of zero length", Event{Kind: MotionStopped}, "v23", `{"event":"motion_stopped","event_id":"","media":"","utc_ms":0,"server":"","motion_id":"","motion_data":"","duration":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.e.MarshalNaming(tt.naming)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}

func TestEventMarshalNamingRejects(t *testing.T) {
	if _, err := (Event{Kind: "tamper"}).MarshalNaming("v22"); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := (Event{Kind: MotionStarted}).MarshalNaming("v24"); err == nil {
		t.Error("unknown naming accepted")
	}
}
