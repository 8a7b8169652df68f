package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// shapeUpload holds what loopback carries toward port to rate (tc: an htb class that a u32
// filter picks by destination port, with a short fifo, as a home router's upload queue; the
// rest goes through unshaped), or lifts that with rate "". Loopback's MTU comes down to
// Ethernet's first, so the shaper sees frames of a real link's size. Only inside a network
// namespace the test made (netnstest.Run).
func shapeUpload(t *testing.T, port int, rate string) {
	t.Helper()
	tc := testtool.Need(t, "iproute2", "tc")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	if rate == "" {
		run(tc, "qdisc", "del", "dev", "lo", "root")
		return
	}
	run("ip", "link", "set", "lo", "mtu", "1500")
	// Send buffers as small as a router's (this namespace's own setting): a desktop's megabytes
	// would hide a short uplink from the relay for a minute.
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_wmem", []byte("4096 16384 49152"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:30", "htb", "rate", rate, "ceil", rate,
			"burst", "4kb"},
		{"qdisc", "add", "dev", "lo", "parent", "1:30", "pfifo", "limit", "20"},
		{"filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32", "match", "ip", "dport",
			strconv.Itoa(port), "0xffff", "flowid", "1:30"},
	} {
		run(tc, args...)
	}
}

// mqttOnlyConfig is a camgate.yaml with MQTT, a publish URL and one camera, and no page, mail
// server or discovery.
func mqttOnlyConfig(gateway, mqttURL, publish, camera string) string {
	return fmt.Sprintf(`gateway_id: %s
data_dir: DATA_DIR
log: {level: debug}
web: {listen: ""}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
mqtt: {url: '%s'}
flussonic: {publish: '%s'}
cameras:
  - %s
`, gateway, mqttURL, publish, camera)
}

// Issue 15: the registration carries the camera's quality and the uplink rate, and is
// re-published when the quality governor switches the camera, not on every rate change. A
// camera relayed through an uplink shaped to 200 kbit/s (tc, in a network namespace of the
// test's own) steps down to its substream: the retained
// P/cameras/<id>/config then reads quality "sub" with the uplink rate measured at the switch.
// Once the uplink has room the governor probes back (after its 60 s steady), and the retained
// config reads "main" again. Each config message the broker passed on differs from the one
// before in its quality: none came from a mere change of rate.
func TestRegistrationFollowsTheQualitySwitch(t *testing.T) {
	netnstest.Run(t, nil, testRegistrationFollowsTheQualitySwitch)
}

func testRegistrationFollowsTheQualitySwitch(t *testing.T) {
	broker := startMosquitto(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cams [2]*sim.Camera // main stream, substream
	for i := range cams {
		c, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		cams[i] = c
		go func() { _ = c.Run(ctx) }() // ends with ctx
	}
	ms, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ms.Run(ctx) }() // ends with ctx
	server := strings.TrimSuffix(strings.TrimPrefix(ms.URL(), "rtsp://"), "/")
	_, port, err := net.SplitHostPort(server)
	if err != nil {
		t.Fatal(err)
	}
	serverPort, _ := strconv.Atoi(port)
	shapeUpload(t, serverPort, "200kbit")

	const prefix = "camgate/gwq"
	topic := prefix + "/cameras/yard/config"
	sub := testtool.Subscribe(t, broker.Port, "-q", "1", "-F", "%t %x", "-t", topic)
	d := startDaemon(t, mqttOnlyConfig("gwq", broker.url(), "rtsp://"+server+"/{stream_name}",
		fmt.Sprintf("{id: yard, url: '%s', substream_url: '%s', audio: false}", cams[0].URL(), cams[1].URL())))

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", tail(d.logs.String(), 6000))
		}
	})
	type reg struct {
		Quality   string `json:"quality"`
		UplinkBps int64  `json:"uplink_bps"`
	}
	regs := func() []reg {
		var out []reg
		for _, line := range sub.Lines() {
			_, payload, _ := strings.Cut(line, " ")
			b, err := hex.DecodeString(payload)
			var r reg
			if err != nil || json.Unmarshal(b, &r) != nil {
				t.Errorf("config payload %q does not parse", line)
				continue
			}
			out = append(out, r)
		}
		return out
	}
	latest := func(want string) func() bool {
		return func() bool {
			r := regs()
			return len(r) > 0 && r[len(r)-1].Quality == want
		}
	}

	waitFor(t, 20*time.Second, "the first registration, on main", latest("main"))
	// The governor steps down after 5 s of drops; the switch waits for the substream's keyframe.
	waitFor(t, 60*time.Second, "the registration on sub", latest("sub"))
	r := regs()
	if got := r[len(r)-1]; got.UplinkBps <= 0 {
		t.Errorf("registration on sub says uplink_bps %d, want the rate measured at the switch", got.UplinkBps)
	}
	shapeUpload(t, serverPort, "")
	// 60 s steady before the probe, then the switch: generous for a loaded machine.
	waitFor(t, 150*time.Second, "the registration back on main", latest("main"))
	r = regs()
	for i := 1; i < len(r); i++ {
		if r[i].Quality == r[i-1].Quality {
			t.Errorf("config message %d repeats quality %q: registrations %+v", i, r[i].Quality, r)
		}
	}
	t.Logf("registrations seen: %+v", r)
}

// A registration queued while the broker is away replaces the one queued before it for the
// same camera (the outbox's keep-latest): re-registering never grows the queue, and what
// stays is the newest.
func TestReRegistrationKeepsOneQueuedConfigPerCamera(t *testing.T) {
	port, err := testtool.FreePort() // nothing listens there: the queue is not drained
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(name string) string {
		return mqttOnlyConfig("gwk", fmt.Sprintf("mqtt://127.0.0.1:%d", port), "rtsp://127.0.0.1:9/{stream_name}",
			fmt.Sprintf("{id: porch, name: '%s', url: 'rtsp://127.0.0.1:9/porch', enabled: false}", name))
	}
	d := startDaemon(t, cfg("porch 0"))
	queued := func() (configs int, last string) {
		msgs, err := d.a.db.Outbox().Peek(mqttQueue, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Topic == "cameras/porch/config" {
				configs++
				last = string(m.Payload)
			}
		}
		return configs, last
	}
	waitFor(t, 10*time.Second, "the first registration queued", func() bool { n, _ := queued(); return n == 1 })
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("porch %d", i)
		d.writeConfig(t, cfg(name))
		d.reload <- struct{}{}
		waitFor(t, 10*time.Second, "the registration of "+name, func() bool {
			_, last := queued()
			return strings.Contains(last, `"name":"`+name+`"`)
		})
		if n, _ := queued(); n != 1 {
			t.Fatalf("after %d re-registrations %d registrations of the camera are queued, want 1", i, n)
		}
	}
}
