package testtool

import (
	"slices"
	"testing"
	"time"
)

// The harness as its callers use it: a subscriber sees what is published, and a persistent
// broker killed as a crash would and started again still holds a retained message.
func TestMosquittoSubscribePublishAndRestart(t *testing.T) {
	m := StartMosquitto(t, MosquittoConfig{Persist: true, Settings: "autosave_interval 1"})
	sub := Subscribe(t, m.Port, "-v", "-q", "1", "-t", "testtool/#")
	seen := func(s *Subscriber, line string) bool {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if slices.Contains(s.Lines(), line) {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}
	// The subscription may not be made yet when the first message goes out: publish until seen.
	deadline := time.Now().Add(time.Minute)
	for !slices.Contains(sub.Lines(), "testtool/probe hello") {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub never printed the probe; broker log:\n%s", m.Log())
		}
		if err := Publish(t, m.Port, "-q", "1", "-t", "testtool/probe", "-m", "hello"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := Publish(t, m.Port, "-q", "1", "-r", "-t", "testtool/kept", "-m", "config"); err != nil {
		t.Fatal(err)
	}
	if !seen(sub, "testtool/kept config") {
		t.Fatal("the retained message was not delivered")
	}
	time.Sleep(3 * time.Second) // past an autosave, so the crash keeps it
	m.Kill()
	if m.Running() {
		t.Fatal("Running() after Kill")
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	late := Subscribe(t, m.Port, "-v", "-t", "testtool/kept")
	if !seen(late, "testtool/kept config") {
		t.Fatalf("after a restart the retained message is gone; broker log:\n%s", m.Log())
	}
}
