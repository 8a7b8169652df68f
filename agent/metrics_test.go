package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 13: the page's /metrics needs no login (scrapers cannot log in), so it carries counts
// over all cameras and never a camera id; the per-camera series are on the control socket only,
// which only the daemon's user reaches.
func TestMetricsWithoutLoginNameNoCamera(t *testing.T) {
	d := startDaemon(t, fmt.Sprintf(`gateway_id: gwmetrics
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: '127.0.0.1:%d'}
discovery: {onvif: false, mdns: false}
flussonic: {publish: 'rtsp://127.0.0.1:9/{stream_name}'}
cameras:
  - {id: bedroom-cam, url: 'rtsp://127.0.0.1:9/bedroom', enabled: false}
  - {id: nursery-cam, url: 'rtsp://127.0.0.1:9/nursery', enabled: false}
`, freePort(t)))
	get := func(hc *http.Client, url string) string {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
		}
		return string(b)
	}

	page := get(&http.Client{Timeout: 10 * time.Second}, "http://"+d.a.WebAddr()+"/metrics")
	for _, want := range []string{"camgate_cameras 2\n", "camgate_cameras_relaying 0\n",
		"camgate_relay_frames_out_total ", "camgate_smtp_sessions ", "camgate_smtp_auth_failures_total 0\n"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page's /metrics lacks %q", want)
		}
	}
	for _, leak := range []string{"camera_id", "bedroom", "nursery"} {
		if strings.Contains(page, leak) {
			t.Errorf("the page's /metrics, served without a login, names %q", leak)
		}
	}

	sock := filepath.Join(d.dir, ControlSocket)
	local := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	control := get(local, "http://camgate/metrics")
	for _, want := range []string{`camgate_camera_online{camera_id="bedroom-cam"} 0`,
		`camgate_camera_online{camera_id="nursery-cam"} 0`, "camgate_cameras 2\n"} {
		if !strings.Contains(control, want) {
			t.Errorf("the control socket's /metrics lacks %q", want)
		}
	}
}
