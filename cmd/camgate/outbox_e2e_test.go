package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/agent"
	"github.com/camgate/camgate/store"
)

func outboxStats(t *testing.T, cfgPath string) store.OutboxStats {
	t.Helper()
	out, err := exec.Command(camgateBin, "outbox", "stats", "--json", "-c", cfgPath).Output()
	if err != nil {
		t.Fatalf("camgate outbox stats: %v", err)
	}
	var st store.OutboxStats
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("outbox stats: %v: %s", err, out)
	}
	return st
}

// Acceptance 3 of issue 4: in a long outage a small outbox drops telemetry first, then the
// oldest events, never a registration; drops are reported; the database file stays bounded.
func TestRunBoundsTheOutboxInALongOutage(t *testing.T) {
	const bound = 1 << 20
	port := freePort(t) // the broker stays down until the end
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// Each camera's snapshot is keep-latest (one queued per camera), so the cameras, not the
	// mails, must be many enough to overflow the outbox: 30 snapshots of 60 kB.
	const n = 30
	var cams []string
	for i := 0; i < n; i++ {
		cams = append(cams, disabledCamera(fmt.Sprintf("cam%d", i)))
	}
	cfg := uplinkConfig("gwb", fmt.Sprintf("mqtt://127.0.0.1:%d", port), smtpAddr, nil,
		fmt.Sprintf("outbox: {max_bytes: %d}\nmotion: {hold: 1s}\n", bound), cams...)
	_, path := runCamgate(t, cfg)
	waitFor(t, 10*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })
	waitFor(t, 10*time.Second, "telemetry queued", func() bool {
		out, _ := exec.Command(camgateBin, "outbox", "list", "--queue", "mqtt", "--max", "1000", "-c", path).Output()
		return strings.Count(string(out), "telemetry") >= 3
	})

	// 40 alarms with 60 kB snapshots of 30 cameras: 1.8 MB of latest snapshots into a 1 MiB outbox.
	for i := 0; i < 40; i++ {
		sendSnapshotMail(t, smtpAddr, fmt.Sprintf("cam%d@gw", i%n), 60_000)
	}
	st := outboxStats(t, path)
	t.Logf("outbox: depth %d, %d of %d bytes, dropped %d telemetry, %d events",
		st.Depth, st.Bytes, st.MaxBytes, st.DroppedTelemetry, st.DroppedEvents)
	if st.DroppedTelemetry == 0 || st.DroppedEvents == 0 {
		t.Errorf("dropped %d telemetry and %d events: want both, telemetry first", st.DroppedTelemetry, st.DroppedEvents)
	}
	if st.Bytes > bound {
		t.Errorf("outbox holds %d bytes, over its bound %d", st.Bytes, bound)
	}

	out, err := exec.Command(camgateBin,
		"outbox", "list", "--json", "--queue", "mqtt", "--max", "10000", "-c", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var list []agent.OutboxEntry
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("outbox list --json: %v: %s", err, out)
	}
	regs, telemetry := map[string]bool{}, 0
	for _, e := range list {
		if e.Class == store.ClassRegistration.String() && strings.HasSuffix(e.Topic, "/config") {
			regs[e.Topic] = true
		}
		if e.Class == store.ClassTelemetry.String() {
			telemetry++
		}
	}
	if len(regs) != n {
		t.Errorf("%d of %d camera registrations still queued: registrations must never be dropped", len(regs), n)
	}
	// Telemetry queued after the snapshots may remain; what came before them went first.
	t.Logf("queued now: %d registrations, %d telemetry, %d messages in all", len(regs), telemetry, len(list))

	info, err := os.Stat(filepath.Join(filepath.Dir(path), "camgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	const slack = 2 << 20
	t.Logf("database file: %d bytes", info.Size())
	if info.Size() > bound+slack {
		t.Errorf("database file is %d bytes, over the bound %d plus a fixed slack %d", info.Size(), bound, slack)
	}

	// The broker comes back: every registration arrives, and telemetry reports the drops.
	startBroker(t, port, "")
	sub := subscribe(t, port, "", "camgate/gwb/#")
	waitFor(t, 30*time.Second, "registrations and telemetry reporting the drops", func() bool {
		r := retained(t, port, "camgate/gwb/cameras/+/config")
		tm, ok := sub.last("camgate/gwb/telemetry")
		var tel agent.Telemetry
		if !ok || json.Unmarshal(tm.Payload, &tel) != nil {
			return false
		}
		return len(r) == n && tel.DroppedEvents > 0 && tel.DroppedTelemetry > 0
	})
}
