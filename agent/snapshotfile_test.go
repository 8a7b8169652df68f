package agent

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/camgate/camgate/internal/testtool"
)

// noisyJPEG is a JPEG that compresses badly, so that it is as big as a camera's alarm snapshot.
func noisyJPEG(t *testing.T, seed uint64) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 320, 240))
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	img.Set(0, 0, color.Gray{Y: uint8(seed)})
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshotConfig is a daemon with camera porch, SMTP on smtpAddr and its MQTT uplink at
// 127.0.0.1:mqttPort, with data_dir dataDir (DATA_DIR: the daemon's own).
func snapshotConfig(dataDir, smtpAddr string, mqttPort int) string {
	return fmt.Sprintf(`gateway_id: gwsnap
data_dir: %s
web: {listen: ""}
smtp: {listen: '%s'}
mqtt: {url: 'mqtt://127.0.0.1:%d'}
discovery: {onvif: false, mdns: false}
motion: {hold: 1s}
cameras:
  - {id: porch, url: 'rtsp://127.0.0.1:9/porch', enabled: false}
`, dataDir, smtpAddr, mqttPort)
}

// mailJPEG sends porch's alarm mail with jpg attached, as a camera does, and wants a 250.
func mailJPEG(t *testing.T, swaks, smtpAddr string, jpg []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "snapshot.jpg")
	if err := os.WriteFile(file, jpg, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(smtpAddr, ":")
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--timeout", "30", "--to", "porch@gw",
		"--from", "camera@lan", "--header", "Subject: Motion Detection Alarm", "--body", "Alarm event: Motion Detection",
		"--attach-type", "image/jpeg", "--attach", "@"+file, "--attach-name", "snapshot.jpg").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<-  250 2.0.0 OK") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
}

// Issue 12, flash wear: an alarm mail's JPEG is written to flash once. The page's
// snapshots/<camera>.jpg and the snapshot queued for MQTT (the uplink is down) are one file, a
// hard link, and a newer mail replaces both without touching the file the older one is in.
func TestAlarmSnapshotIsOneFileOnDisk(t *testing.T) {
	swaks := testtool.Need(t, "swaks", "swaks")
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, snapshotConfig("DATA_DIR", smtpAddr, freePort(t)))
	page := filepath.Join(d.dir, "snapshots", "porch.jpg")
	queuedDir := filepath.Join(d.dir, "camgate.db.payloads")
	for i := range 2 {
		jpg := noisyJPEG(t, uint64(i+1))
		mailJPEG(t, swaks, smtpAddr, jpg)
		got, err := os.ReadFile(page)
		if err != nil || !bytes.Equal(got, jpg) {
			t.Fatalf("mail %d: %s holds %d bytes (%v), want the mail's %d-byte JPEG", i+1, page, len(got), err, len(jpg))
		}
		var queued []string
		waitFor(t, 5*time.Second, "one queued snapshot file", func() bool {
			entries, _ := os.ReadDir(queuedDir)
			queued = queued[:0]
			for _, e := range entries {
				queued = append(queued, e.Name())
			}
			return len(queued) == 1
		})
		a, errA := os.Stat(page)
		b, errB := os.Stat(filepath.Join(queuedDir, queued[0]))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("mail %d: the page's snapshot and the queued one are not one file (%v, %v)", i+1, errA, errB)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(d.dir, "snapshots", "*.tmp")); len(leftovers) > 0 {
		t.Errorf("temporary snapshot files left: %q", leftovers)
	}
}

// A snapshot queued while the uplink is down (kept in a payload file, linked to the page's copy)
// survives a restart of camgate and reaches the broker whole, as the retained snapshot topic.
func TestQueuedSnapshotReachesTheBrokerAfterARestart(t *testing.T) {
	swaks := testtool.Need(t, "swaks", "swaks")
	dataDir := t.TempDir()
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mqttPort := freePort(t)
	jpg := noisyJPEG(t, 7)

	first := startDaemon(t, snapshotConfig(dataDir, smtpAddr, mqttPort))
	mailJPEG(t, swaks, smtpAddr, jpg)
	first.stop(t)

	broker := testtool.StartMosquitto(t, testtool.MosquittoConfig{Port: mqttPort})
	startDaemon(t, snapshotConfig(dataDir, smtpAddr, mqttPort))
	got := make(chan []byte, 1)
	opts := paho.NewClientOptions().AddBroker(strings.Replace(broker.URL(), "mqtt://", "tcp://", 1)).
		SetClientID("test-snapshot-reader").SetCleanSession(true).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test MQTT client: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("camgate/gwsnap/cameras/porch/snapshot", 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- bytes.Clone(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, jpg) {
			t.Errorf("the broker's snapshot is %d bytes, not the mail's %d-byte JPEG", len(b), len(jpg))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no snapshot at the broker 30 s after the restart")
	}
	waitFor(t, 10*time.Second, "the delivered snapshot's payload file to go", func() bool {
		entries, _ := os.ReadDir(filepath.Join(dataDir, "camgate.db.payloads"))
		return len(entries) == 0
	})
	if b, err := os.ReadFile(filepath.Join(dataDir, "snapshots", "porch.jpg")); err != nil || !bytes.Equal(b, jpg) {
		t.Errorf("the page's snapshot after delivery: %d bytes, %v; want the JPEG kept", len(b), err)
	}
}
