package agent

import (
	"regexp"
	"testing"
)

func TestCameraIDs(t *testing.T) {
	cases := []struct{ got, want string }{
		{CameraIDFromMAC("00:40:8C:12:AB:CD"), "cam-00408c12abcd"},
		{CameraIDFromMAC("00-40-8c-12-ab-cd"), "cam-00408c12abcd"},
		{CameraIDFromURL("rtsp://admin:secret@10.0.0.20:554/ch1"), CameraIDFromURL("rtsp://other:pw@10.0.0.20:554/ch1")},
		{CameraIDFromURL("rtsp://10.0.0.20/CH1"), CameraIDFromURL("rtsp://10.0.0.20/CH1")},
		{CameraIDFromSerial("AXIS", " ACCC8E123456 "), CameraIDFromSerial("axis", "ACCC8E123456")},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %q != %q", i, c.got, c.want)
		}
	}
	if CameraIDFromURL("rtsp://10.0.0.20/ch1") == CameraIDFromURL("rtsp://10.0.0.20/ch2") {
		t.Error("different streams must get different ids")
	}
}

func TestAgentIDsAreTenDigitsStableAndUnique(t *testing.T) {
	ten := regexp.MustCompile(`^[1-9][0-9]{9}$`)
	assigned := map[string]string{}
	seen := map[string]string{}
	for i := 0; i < 2000; i++ {
		cam := CameraIDFromURL("rtsp://10.0.0.1/" + string(rune('a'+i%26)) + string(rune('0'+i/26%10)) +
			string(rune('A'+i/260)))
		id := assignAgentID("gw1", cam, assigned)
		if !ten.MatchString(id) {
			t.Fatalf("agent_id %q is not 10 digits", id)
		}
		if other, dup := seen[id]; dup && other != cam {
			t.Fatalf("agent_id %s given to %s and %s", id, other, cam)
		}
		seen[id] = cam
		if again := assignAgentID("gw1", cam, assigned); again != id {
			t.Fatalf("agent_id of %s changed from %s to %s", cam, id, again)
		}
	}
	// A fresh gateway database gives the same first id: it depends only on gateway and camera.
	if a, b := assignAgentID("gw1", "porch", map[string]string{}),
		assignAgentID("gw1", "porch", map[string]string{}); a != b {
		t.Errorf("agent_id not a function of gateway and camera: %s vs %s", a, b)
	}
	// A collision takes the next candidate.
	taken := map[string]string{"other": agentIDCandidate("gw1", "porch", 0)}
	if got := assignAgentID("gw1", "porch", taken); got == taken["other"] {
		t.Error("a taken agent_id was handed out twice")
	}
}
