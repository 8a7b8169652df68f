package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/internal/testtool"
)

// replyWithin is the longest any request may wait for the agent's answer (issue 12: no deadlock).
const replyWithin = 2 * time.Second

// stormConfig is ownerConfig with WS-Discovery on loopback: only for a test in a network
// namespace of its own (netnstest), where that loopback is the test's.
func stormConfig(mqttURL, fileCamName string) string {
	return strings.Replace(ownerConfig(mqttURL, fileCamName), "discovery: {onvif: false, mdns: false}",
		"discovery: {onvif: true, mdns: false, interval: 10m, interfaces: [lo]}", 1)
}

func ownerConfig(mqttURL, fileCamName string) string {
	return fmt.Sprintf(`gateway_id: gwc
data_dir: DATA_DIR
log: {level: debug}
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
mqtt: {url: '%s', telemetry_interval: 1s}
flussonic: {publish: 'rtsp://127.0.0.1:9/live'}
cameras:
  - {id: file-cam, name: '%s', url: 'rtsp://127.0.0.1:9/file', enabled: true}
`, mqttURL, fileCamName)
}

// mqttCommander sends P/cmd/<name> through a real broker and waits for the reply.
type mqttCommander struct {
	c       paho.Client
	prefix  string
	mu      sync.Mutex
	waiting map[string]chan map[string]any
	sent    map[string]time.Time // every command sent, by id
	late    []string             // replies that came after send had given up on them
	next    int
}

func newCommander(t *testing.T, brokerURL, prefix string) *mqttCommander {
	m := &mqttCommander{prefix: prefix, waiting: map[string]chan map[string]any{}, sent: map[string]time.Time{}}
	opts := paho.NewClientOptions().AddBroker(strings.Replace(brokerURL, "mqtt://", "tcp://", 1)).
		SetClientID("test-commander").
		SetCleanSession(true).SetAutoReconnect(false)
	m.c = paho.NewClient(opts)
	if tok := m.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test MQTT client: %v", tok.Error())
	}
	t.Cleanup(func() { m.c.Disconnect(100) })
	tok := m.c.Subscribe(prefix+"/cmd/+/reply", 1, func(_ paho.Client, msg paho.Message) {
		var r map[string]any
		if json.Unmarshal(msg.Payload(), &r) != nil {
			return
		}
		id, _ := r["id"].(string)
		m.mu.Lock()
		ch := m.waiting[id]
		delete(m.waiting, id)
		if at, ok := m.sent[id]; ok && ch == nil {
			// A command given up on as lost was only slow: a stalled loop looks like this.
			m.late = append(m.late, fmt.Sprintf("%s answered after %v", id, time.Since(at).Round(time.Millisecond)))
		}
		m.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return m
}

// waitHeard waits until camgate answers commands: it subscribes to them just after it connects,
// so a command sent in between goes unheard. The probe, a reboot_relay of no camera, changes
// nothing.
func (m *mqttCommander) waitHeard(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if m.send("reboot_relay", map[string]any{"camera_id": "nobody"}) != nil {
			return
		}
	}
	t.Fatal("camgate answered no MQTT command within 20 s")
}

// send publishes one command and returns its reply, or nil after replyWithin.
func (m *mqttCommander) send(name string, body map[string]any) map[string]any {
	m.mu.Lock()
	m.next++
	id := fmt.Sprintf("c%d", m.next)
	ch := make(chan map[string]any, 1)
	m.waiting[id] = ch
	m.sent[id] = time.Now()
	m.mu.Unlock()
	body["id"] = id
	b, _ := json.Marshal(body)
	m.c.Publish(m.prefix+"/cmd/"+name, 1, false, b)
	select {
	case r := <-ch:
		return r
	case <-time.After(replyWithin):
		m.mu.Lock()
		delete(m.waiting, id)
		m.mu.Unlock()
		return nil
	}
}

// Acceptance 1 of issue 12: for 30 s at once, the page adds, renames, disables and removes a
// camera; MQTT set_camera, reboot_relay, remove_camera and add_camera change another; SIGHUP
// reloads rename a camera of the file; discovery Hellos and Byes come and go; the connection
// settings change (the stream name every time, the MQTT login every twentieth time, which restarts
// the uplink). Every reply comes within 2 s; at the end the broker has exactly one connection
// of camgate's and no reconnecting; the registry is what the last request of each kind asked
// for; and once the agent has stopped no goroutine of it is left.
//
// An MQTT command published while the uplink restarts can be lost with the old clean session,
// as any MQTT client's can: such a command is sent once more, and that one must be answered
// in time (a deadlock would lose both).
//
// Discovery is real: the test runs in a network namespace of its own, where two simulated ONVIF
// devices send WS-Discovery Hello and Bye to the multicast group on its loopback, which the
// agent's discoverer listens to.
func TestOwnerUnderConcurrentChanges(t *testing.T) {
	netnstest.Run(t, []string{helloByeIP, stayingIP}, testOwnerUnderConcurrentChanges)
}

const (
	helloByeIP = "10.77.12.10" // the device that says Hello and Bye by turns
	stayingIP  = "10.77.12.11" // the device that comes and stays
)

// announcer is a simulated ONVIF device on the test namespace's discovery group.
func announcer(t *testing.T, ip string) *onvifdev.Device {
	dev, err := onvifdev.New(onvifdev.Config{Addr: ip + ":0", Manufacturer: "Hikvision", Model: "DS-2CD2043G2-I",
		Name: "dev-" + ip, RTSPURL: "rtsp://" + ip + ":9/stream", DiscoveryGroup: "239.255.255.250:3702",
		DiscoveryIP: ip, EndpointRef: "urn:uuid:owner-" + ip})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	testtool.Go(ctx, t, "device "+ip, dev.Run) // says Hello at start
	return dev
}

func testOwnerUnderConcurrentChanges(t *testing.T) {
	const storm = 30 * time.Second
	broker := startMosquitto(t)
	helloBye := announcer(t, helloByeIP)
	announcer(t, stayingIP)
	goroutinesBefore := settledGoroutines()
	d := startDaemon(t, stormConfig(broker.url(), "file-0"))
	p := loginPage(t, d)
	cmd := newCommander(t, broker.url(), "camgate/gwc")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s\nagent log (tail):\n%s", tail(broker.logText(), 30), tail(d.logs.String(), 60))
		}
	})
	waitFor(t, 10*time.Second, "camgate's MQTT connection", d.mqttUp)

	var (
		mu       sync.Mutex
		failures []string
		slowest  time.Duration
		resent   int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	timed := func(what string, f func() error) error {
		start := time.Now()
		err := f()
		took := time.Since(start)
		if errors.Is(err, errNoReply) {
			return err // lost with an old MQTT session: counted by the caller
		}
		mu.Lock()
		slowest = max(slowest, took)
		mu.Unlock()
		if took > replyWithin {
			fail("%s answered after %v", what, took)
		}
		return err
	}
	end := time.Now().Add(storm)
	var wg sync.WaitGroup
	worker := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				f(i)
				time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
			}
		}()
	}

	// The page's camera: the final state is whatever the page asked last.
	type pageWant struct {
		exists  bool
		name    string
		enabled bool
	}
	var pageFinal pageWant
	const pageURL = "rtsp://127.0.0.1:9/page"
	pageCam := CameraIDFromURL(pageURL)
	worker(func(i int) {
		var err error
		switch i % 4 {
		case 0:
			if pageFinal.exists { // left renamed and disabled last round: it stays
				return
			}
			err = timed("page add", func() error {
				_, err := p.do("POST", "/api/cameras", map[string]any{"url": pageURL}, nil)
				return err
			})
			if err == nil {
				pageFinal = pageWant{exists: true, name: "", enabled: true}
			}
		case 1:
			name := "page-" + itoa(i)
			err = timed("page rename", func() error {
				_, err := p.do("PATCH", "/api/cameras/"+pageCam, map[string]any{"name": name}, nil)
				return err
			})
			if err == nil {
				pageFinal.name = name
			}
		case 2:
			err = timed("page disable", func() error {
				_, err := p.do("PATCH", "/api/cameras/"+pageCam, map[string]any{"enabled": false}, nil)
				return err
			})
			if err == nil {
				pageFinal.enabled = false
			}
		case 3:
			if rand.IntN(2) == 0 { // sometimes the camera stays, renamed and disabled
				return
			}
			err = timed("page remove", func() error { _, err := p.do("DELETE", "/api/cameras/"+pageCam, nil, nil); return err })
			if err == nil {
				pageFinal = pageWant{}
			}
		}
		if err != nil {
			fail("page step %d: %v", i, err)
		}
	})
	// Readers of the view, as the page's status and a Prometheus scrape.
	worker(func(i int) {
		// Only the time counts for these readers: the page worker checks what the page answers.
		_ = timed("page status", func() error { _, err := p.do("GET", "/api/status", nil, nil); return err })
		_ = timed("metrics", func() error { _, err := p.do("GET", "/metrics", nil, nil); return err })
	})

	// The MQTT camera.
	mqttFinal := pageWant{exists: true, enabled: true}
	// A command lost with the old session, or answered "cancelled" by a client that was
	// stopping before the agent took it, was not applied: it is sent once more.
	notApplied := func(r map[string]any) bool {
		if r == nil {
			return true
		}
		e, _ := r["error"].(string)
		return r["ok"] == false && (strings.Contains(e, "cancel") || strings.Contains(e, "stopping"))
	}
	// Up to five tries: the connection worker restarts the uplink about once a second, and on a
	// loaded machine a reconnect can take a few seconds, so two or three commands in a row can
	// fall into one. A deadlock loses every try.
	const tries = 5
	// command returns the reply and whether it is for a command sent again: the lost try may
	// have been applied with only its reply lost.
	command := func(name string, body map[string]any) (map[string]any, bool) {
		var r map[string]any
		for try := 0; try < tries; try++ {
			if try > 0 {
				mu.Lock()
				resent++
				mu.Unlock()
			}
			_ = timed("mqtt "+name, func() error { r = cmd.send(name, body); return noReply(r) }) // r says
			if !notApplied(r) {
				return r, try > 0
			}
		}
		fail("mqtt %s: not taken %d times in a row: %v", name, tries, r)
		return r, true
	}
	refused := func(r map[string]any, err error) bool {
		e, _ := r["error"].(string)
		return r["ok"] == false && strings.Contains(e, err.Error())
	}
	// camgate subscribes to its commands just after it connects: the first may go unheard.
	r, again := command("add_camera", map[string]any{"camera_id": "mqtt-cam", "url": "rtsp://127.0.0.1:9/mqtt"})
	if added := r != nil && (r["ok"] == true || (again && refused(r, ErrCameraExists))); !added {
		t.Fatalf("add_camera: %v", r)
	}
	worker(func(i int) {
		switch i % 5 {
		case 0, 2:
			name := "mqtt-" + itoa(i)
			r, _ := command("set_camera", map[string]any{"camera_id": "mqtt-cam", "name": name})
			if r != nil && r["ok"] == true {
				mqttFinal.name = name
			} else if mqttFinal.exists {
				fail("set_camera on an existing camera: %v", r)
			}
		case 1:
			command("reboot_relay", map[string]any{"camera_id": "mqtt-cam"}) // ok or "not relayed": an answer is what counts
		case 3:
			r, again := command("remove_camera", map[string]any{"camera_id": "mqtt-cam"})
			// Gone at the try sent again, when it was there before: the lost try removed it.
			if r != nil && (r["ok"] == true || (again && mqttFinal.exists && refused(r, ErrUnknownCamera))) {
				mqttFinal = pageWant{}
			}
		case 4:
			r, again := command("add_camera", map[string]any{"camera_id": "mqtt-cam", "url": "rtsp://127.0.0.1:9/mqtt"})
			if r != nil && (r["ok"] == true || (again && !mqttFinal.exists && refused(r, ErrCameraExists))) {
				mqttFinal = pageWant{exists: true, enabled: true}
			}
		}
	})

	// SIGHUP reloads of a file whose camera's name changes each time.
	fileFinal := "file-0"
	worker(func(i int) {
		fileFinal = "file-" + itoa(i+1)
		d.writeConfig(t, stormConfig(broker.url(), fileFinal))
		d.reload <- struct{}{}
		time.Sleep(200 * time.Millisecond)
	})

	// Discovery: one device says Hello and Bye by turns, another came at the start and stays.
	discoveredFinal := true
	worker(func(i int) {
		say, appeared := helloBye.Bye, false
		if i%2 == 1 {
			say, appeared = helloBye.Hello, true
		}
		if err := say(); err != nil {
			fail("discovery announcement %d: %v", i, err)
			return
		}
		discoveredFinal = appeared
		time.Sleep(50 * time.Millisecond)
	})

	// Connection settings from the page.
	var connFinal struct{ stream, user string }
	logins := 0 // connection changes that gave the uplink a new login, so restarted it
	worker(func(i int) {
		stream := "s" + itoa(i) + "-{camera_id}"
		user := "u" + itoa(i/20%2) // a new login restarts the uplink: every 2-3 s
		err := timed("page connection", func() error {
			_, err := p.do("PUT", "/api/connection", map[string]any{
				"mqtt":      map[string]any{"url": broker.url(), "username": user, "topic_prefix": "camgate/{gateway_id}"},
				"flussonic": map[string]any{"publish": "rtsp://127.0.0.1:9/live", "username": "", "stream_name": stream},
			}, nil)
			return err
		})
		if err != nil {
			fail("connection %d: %v", i, err)
			return
		}
		if user != connFinal.user {
			logins++
		}
		connFinal.stream, connFinal.user = stream, user
		time.Sleep(100 * time.Millisecond)
	})
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("slowest reply %v; MQTT commands sent again after an uplink restart: %d (%d restarts)",
		slowest, resent, logins)
	// A command counts as lost, and is sent again, only when no reply ever comes: one that came
	// late was a stalled agent, not a restarting uplink.
	time.Sleep(replyWithin)
	for _, l := range cmd.lateReplies() {
		t.Errorf("MQTT reply later than %v: %s", replyWithin, l)
	}
	// Each restart can lose the commands of one reconnect, a few 2 s waits on a loaded machine;
	// more than that is commands going unanswered with the uplink up.
	if limit := 3*logins + 3; resent > limit {
		t.Errorf("%d MQTT commands went unanswered and were sent again, for %d uplink restarts (at most %d)",
			resent, logins, limit)
	}

	// The registry is what the last request of each kind asked for. A reload is answered by
	// the loop after the file was read: wait for the last one to land.
	waitFor(t, 10*time.Second, "the last reload", func() bool {
		c, err := d.a.cameraStatus("file-cam")
		return err == nil && c.Name == fileFinal
	})
	cams := map[string]CameraStatus{}
	for _, c := range d.a.Cameras() {
		cams[c.ID] = c
	}
	check := func(id string, w pageWant) {
		c, ok := cams[id]
		switch {
		case ok != w.exists:
			t.Errorf("%s: in registry %v, want %v", id, ok, w.exists)
		case ok && (c.Name != w.name || c.Enabled != w.enabled):
			t.Errorf("%s: name %q enabled %v, want %q %v", id, c.Name, c.Enabled, w.name, w.enabled)
		}
	}
	check(pageCam, pageFinal)
	check("mqtt-cam", mqttFinal)
	// The last announcement travels through the multicast group and the discoverer.
	discovered := func() (helloBye, staying bool) {
		for _, c := range d.a.Cameras() {
			if c.Origin == originDiscovered {
				helloBye = helloBye || strings.Contains(c.URL, helloByeIP)
				staying = staying || strings.Contains(c.URL, stayingIP)
			}
		}
		return helloBye, staying
	}
	waitFor(t, 10*time.Second, "the last Hello or Bye to land", func() bool {
		hb, st := discovered()
		return hb == discoveredFinal && st
	})
	cfg := d.a.config()
	if cfg.Flussonic.StreamName != connFinal.stream || cfg.MQTT.Username != connFinal.user {
		t.Errorf("connection: stream name %q, MQTT user %q; want the last request's %q, %q",
			cfg.Flussonic.StreamName, cfg.MQTT.Username, connFinal.stream, connFinal.user)
	}
	if want := strings.Replace(connFinal.stream, "{camera_id}", "file-cam", 1); cams["file-cam"].StreamName != want {
		t.Errorf("file-cam stream name %q, want %q", cams["file-cam"].StreamName, want)
	}

	// Exactly one MQTT connection of camgate's at the broker, and it stays: two clients with one
	// client id would take turns, each closing the other.
	waitFor(t, 10*time.Second, "camgate connected to the broker", d.mqttUp)
	for range 2 {
		if got := sysClientsConnected(t, broker); got != 2 { // camgate and this test's commander
			t.Errorf("the broker counts %d connected clients, want 2 (camgate and the test's)", got)
		}
		time.Sleep(2 * time.Second)
	}
	if !d.mqttUp() {
		t.Error("camgate's MQTT connection did not stay up with no change asked")
	}

	// No goroutine of the agent outlives it.
	d.stop(t)
	cmd.c.Disconnect(100)
	p.hc.CloseIdleConnections()
	var after int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after <= goroutinesBefore+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines 15 s after the agent stopped, %d before it started", after, goroutinesBefore)
			break
		}
	}
	if t.Failed() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		stacks := strings.Split(string(buf[:n]), "\n\n")
		sort.Strings(stacks)
		t.Logf("goroutines before %d, after %d:\n%s", goroutinesBefore, after, strings.Join(stacks, "\n\n"))
	}
}

// settledGoroutines counts the goroutines once the count has held still for half a second, so
// that what the test's peers start as they come up is not taken for the agent's.
func settledGoroutines() int {
	n, still := runtime.NumGoroutine(), 0
	for still < 5 {
		time.Sleep(100 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			still++
		} else {
			n, still = m, 0
		}
	}
	return n
}

var errNoReply = errors.New("no reply")

func noReply(r map[string]any) error {
	if r == nil {
		return errNoReply
	}
	return nil
}

// lateReplies returns the replies that came after send had returned nil for them.
func (m *mqttCommander) lateReplies() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.late...)
}

// sysClientsConnected reads the broker's own count of connected clients ($SYS, every second),
// through a one-shot client that it subtracts.
func sysClientsConnected(t *testing.T, b *mosquitto) int {
	t.Helper()
	got := make(chan string, 4)
	opts := paho.NewClientOptions().AddBroker("tcp://" + b.addr()).SetClientID("test-sys").SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("sys client: %v", tok.Error())
	}
	defer c.Disconnect(100)
	// The broker publishes the count (retained) only when it changes, at most once a second:
	// past two of its ticks the retained value counts this client too.
	time.Sleep(2500 * time.Millisecond)
	c.Subscribe("$SYS/broker/clients/connected", 0, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	select {
	case v := <-got:
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("$SYS/broker/clients/connected = %q: %v", v, err)
		}
		return n - 1
	case <-time.After(5 * time.Second):
		t.Fatal("no $SYS/broker/clients/connected from the broker within 5 s")
	}
	return -1
}
