package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 13 acceptance 5 (SMTP part): 100 sessions each send a 2 MiB JPEG attachment (2.7 MB of
// base64) to `camgate run` and stall mid-DATA. The daemon's peak RSS stays under 64 MB, and a
// camera that mails its alarm afterwards (swaks, a JPEG attached) is served.
func TestRunStalledMailUploadsStayUnder64MB(t *testing.T) {
	swaks := needTool(t, "swaks", "swaks")
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	daemon, _ := runCamgate(t, fmt.Sprintf(`gateway_id: gwsm
data_dir: DATA_DIR
log: {level: info}
web: {listen: ""}
smtp: {listen: '%s'}
discovery: {onvif: false, mdns: false}
flussonic: {publish: 'rtsp://127.0.0.1:9/{stream_name}'}
cameras:
%s`, smtpAddr, disabledCamera("porch")))
	waitFor(t, 20*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })
	pid := daemon.cmd.Process.Pid
	before := vmHWM(t, pid)

	upload := stalledUpload(2 << 20)
	var (
		mu      sync.Mutex
		stalled []net.Conn
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 10)
	)
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for range 100 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := intoDATA(smtpAddr)
			if err != nil {
				t.Logf("an upload did not reach DATA: %v", err) // refused with 421 is allowed
				return
			}
			mu.Lock()
			stalled = append(stalled, c)
			mu.Unlock()
			_, _ = c.Write(upload) // fails once the daemon closed the session to make room
		})
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // let the daemon read what the sockets still hold
	peak := vmHWM(t, pid)
	open := 0
	for _, c := range stalled {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && isTimeout(err) {
			open++
		}
	}
	t.Logf("daemon VmHWM %d KiB before, %d KiB after 100 stalled 2 MiB uploads (%d reached DATA, %d still open)",
		before>>10, peak>>10, len(stalled), open)
	if len(stalled) < 50 { // else the daemon was not loaded, and the bound shows nothing
		t.Fatalf("only %d of 100 uploads reached DATA", len(stalled))
	}
	if peak >= 64<<20 {
		t.Fatalf("peak RSS %d MiB, want under 64", peak>>20)
	}

	// The stalled sessions still open, a camera mails its alarm with a snapshot: served.
	jpeg := filepath.Join(t.TempDir(), "snap.jpg")
	if err := os.WriteFile(jpeg, uploadJPEG(300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(smtpAddr, ":")
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--to", "porch@gw", "--from", "camera@lan",
		"--timeout", "60", "--header", "Subject: Motion Detection Alarm", "--body", "Alarm event: Motion Detection",
		"--attach-type", "image/jpeg", "--attach-name", "snap.jpg", "--attach", "@"+jpeg).CombinedOutput()
	if err != nil {
		t.Fatalf("the camera's mail during the attack: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "the camera's alarm in the daemon's log", func() bool {
		return strings.Contains(daemon.out.String(), "motion started")
	})
	if peak := vmHWM(t, pid); peak >= 64<<20 {
		t.Fatalf("peak RSS %d MiB after the camera's mail, want under 64", peak>>20)
	}
}

// uploadJPEG is size bytes starting with the JPEG magic, random after it so nothing shrinks it.
func uploadJPEG(size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[0], b[1], b[2] = 0xFF, 0xD8, 0xFF
	return b
}

// stalledUpload is the content of an alarm mail carrying a size-byte JPEG, cut before its end.
func stalledUpload(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: Motion Detection Alarm\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: image/jpeg\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(uploadJPEG(size))
	for len(enc) > 0 {
		k := min(76, len(enc))
		b.WriteString(enc[:k] + "\r\n")
		enc = enc[k:]
	}
	return b.Bytes()
}

// intoDATA opens an SMTP session and leads it to the point where the mail's content goes.
func intoDATA(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	for _, step := range [][2]string{{"", "220"}, {"EHLO attacker\r\n", "250"},
		{"MAIL FROM:<x@lan>\r\n", "250"}, {"RCPT TO:<porch@gw>\r\n", "250"}, {"DATA\r\n", "354"}} {
		if _, err := io.WriteString(c, step[0]); err != nil {
			c.Close()
			return nil, err
		}
		var line string
		for line == "" || len(line) > 3 && line[3] == '-' {
			if line, err = r.ReadString('\n'); err != nil {
				c.Close()
				return nil, fmt.Errorf("after %q: %q: %w", step[0], line, err)
			}
		}
		if !strings.HasPrefix(line, step[1]) {
			c.Close()
			return nil, fmt.Errorf("after %q: %q", step[0], line)
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// vmHWM is a process's peak resident set, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
