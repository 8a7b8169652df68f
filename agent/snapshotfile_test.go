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

// Issue 12, flash wear: an alarm mail's JPEG is written to flash once. The page's
// snapshots/<camera>.jpg and the snapshot queued for MQTT (the uplink is down) are one file, a
// hard link, and a newer mail replaces both without touching the file the older one is in.
func TestAlarmSnapshotIsOneFileOnDisk(t *testing.T) {
	swaks := testtool.Need(t, "swaks", "swaks")
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, fmt.Sprintf(`gateway_id: gwsnap
data_dir: DATA_DIR
web: {listen: ""}
smtp: {listen: '%s'}
mqtt: {url: 'mqtt://127.0.0.1:%d'}
discovery: {onvif: false, mdns: false}
motion: {hold: 1s}
cameras:
  - {id: porch, url: 'rtsp://127.0.0.1:9/porch', enabled: false}
`, smtpAddr, freePort(t)))
	host, port, _ := strings.Cut(smtpAddr, ":")
	page := filepath.Join(d.dir, "snapshots", "porch.jpg")
	queuedDir := filepath.Join(d.dir, "camgate.db.payloads")
	for i := range 2 {
		jpg := noisyJPEG(t, uint64(i+1))
		file := filepath.Join(t.TempDir(), "snapshot.jpg")
		if err := os.WriteFile(file, jpg, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(swaks, "--server", host, "--port", port, "--timeout", "30", "--to", "porch@gw",
			"--from", "camera@lan", "--header", "Subject: Motion Detection Alarm", "--body", "Alarm event: Motion Detection",
			"--attach-type", "image/jpeg", "--attach", "@"+file, "--attach-name", "snapshot.jpg").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "<-  250 2.0.0 OK") {
			t.Fatalf("mail %d: swaks: %v\n%s", i+1, err, out)
		}
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
