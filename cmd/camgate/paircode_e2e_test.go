package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pairCodeCmd runs `camgate pair-code` with args and returns the code it printed.
func pairCodeCmd(t *testing.T, cfgPath string, args ...string) string {
	t.Helper()
	cmd := exec.Command(camgateBin, append([]string{"pair-code", "-c", cfgPath}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("camgate pair-code %v: %v: %s", args, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// loginStatus posts a setup code to the page and returns the status.
func loginStatus(t *testing.T, base, code string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"code": code})
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post(base+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// linesNaming counts the log lines that contain code.
func linesNaming(log, code string) int {
	n := 0
	for line := range strings.Lines(log) {
		if strings.Contains(line, code) {
			n++
		}
	}
	return n
}

// Issue 13 "a local override": `camgate pair-code --rotate` beside a running daemon prints a new
// code; the daemon's sessions end (401), the old code no longer logs in and the new one does. The
// code is in the log of the start that created it, and of no later start.
func TestPairCodeRotateEndsEverySessionOfARunningDaemon(t *testing.T) {
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	daemon, cfgPath := runCamgate(t, fmt.Sprintf(`gateway_id: gwp
data_dir: DATA_DIR
web: {listen: "127.0.0.1:%d"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
`, port))
	dataDir := filepath.Dir(cfgPath)
	p := loginPage(t, base, dataDir)
	status := func() int {
		t.Helper()
		resp, err := p.c.Get(base + "/api/status")
		if err != nil {
			t.Fatalf("GET /api/status: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := status(); st != http.StatusOK {
		t.Fatalf("GET /api/status after login: %d", st)
	}
	first := pairCodeCmd(t, cfgPath)
	if n := linesNaming(daemon.out.String(), first); n != 1 {
		t.Errorf("the start that created the code logged it on %d lines, want 1", n)
	}

	rotated := pairCodeCmd(t, cfgPath, "--rotate")
	if rotated == first || len(rotated) != len("1234-5678") {
		t.Fatalf("pair-code --rotate printed %q after %q: want a new code", rotated, first)
	}
	if got := pairCodeCmd(t, cfgPath); got != rotated {
		t.Errorf("pair-code after the rotation prints %q, want %q", got, rotated)
	}
	if st := status(); st != http.StatusUnauthorized {
		t.Errorf("the session from before the rotation: GET /api/status %d, want 401", st)
	}
	if st := loginStatus(t, base, first); st != http.StatusUnauthorized {
		t.Errorf("the old code: login %d, want 401", st)
	}
	if st := loginStatus(t, base, rotated); st != http.StatusOK {
		t.Errorf("the new code: login %d, want 200", st)
	}
	if n := linesNaming(daemon.out.String(), rotated); n != 0 {
		t.Errorf("the daemon logged the rotated code on %d lines, want 0", n)
	}
	if !strings.Contains(daemon.out.String(), "every session ended") {
		t.Error("the daemon did not log that the sessions ended")
	}

	// A second start on the same data dir logs no code at all.
	daemon.stop(t, syscall.SIGTERM, 20*time.Second)
	again := start(t, camgateBin, "run", "-c", cfgPath)
	waitFor(t, 20*time.Second, "the second start's page", func() bool {
		return strings.Contains(again.out.String(), "pairing page listening")
	})
	if st := loginStatus(t, base, rotated); st != http.StatusOK {
		t.Errorf("the rotated code after a restart: login %d, want 200", st)
	}
	for _, code := range []string{first, rotated} {
		if n := linesNaming(again.out.String(), code); n != 0 {
			t.Errorf("the second start logged the code %s on %d lines, want 0", code, n)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "setup-code.tmp")); err == nil {
		t.Error("the rotation left its temporary file behind")
	}
}
