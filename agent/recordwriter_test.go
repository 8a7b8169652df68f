package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/store"
)

// writerConfig is a gateway with no uplink: the only store writes are the agent's records.
const writerConfig = `gateway_id: gww
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
flussonic: {publish: 'rtsp://127.0.0.1:9/live'}
`

// testDisk is the recordWriter's hook: the disk a test makes slow, stuck or failing, key by key.
type testDisk struct {
	mu    sync.Mutex
	fail  map[string]error
	hold  map[string]chan struct{} // the write waits until the channel is closed
	held  chan string              // each held write's key, as it starts waiting
	delay time.Duration            // every camera record write takes this long
}

func newTestDisk() *testDisk {
	return &testDisk{fail: map[string]error{}, hold: map[string]chan struct{}{}, held: make(chan string, 16)}
}

func (d *testDisk) write(key string) error {
	d.mu.Lock()
	err, hold, delay := d.fail[key], d.hold[key], d.delay
	d.mu.Unlock()
	if hold != nil {
		select {
		case d.held <- key:
		default: // nobody is counting any more
		}
		<-hold
	}
	if strings.HasPrefix(key, "cameras/") {
		time.Sleep(delay)
	}
	return err
}

func (d *testDisk) failWrites(key string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[key] = err
}

// holdWrites makes the writes of key wait until the returned function is called.
func (d *testDisk) holdWrites(t *testing.T, key string) (release func()) {
	ch := make(chan struct{})
	d.mu.Lock()
	d.hold[key] = ch
	d.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release) // before the daemon stops: cleanups run last first
	return release
}

func (d *testDisk) slowCameraWrites(delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
}

func cameraByID(a *Agent, id string) (CameraStatus, bool) {
	for _, c := range a.Cameras() {
		if c.ID == id {
			return c, true
		}
	}
	return CameraStatus{}, false
}

func ptr[T any](v T) *T { return &v }

// Issue 12: no fsync happens in the registry loop. While one camera's record write hangs (a
// full or failing flash), the loop goes on serving: the page's view shows the pending camera,
// a request with nothing to write is answered, a discovery is taken up and a second camera's
// change is applied, all within 1 s. Writes keep their order, so the second camera's reply
// comes after the first's. Once the write goes through, both replies arrive and both records
// are on disk.
func TestAHangingStoreWriteHoldsUpNoOtherRequest(t *testing.T) {
	disk := newTestDisk()
	d := startDaemonIn(t, t.TempDir(), writerConfig, func(a *Agent) { a.writer.hook = disk.write })
	ctx := context.Background()
	quick, err := d.a.AddCamera(ctx, CameraRequest{URL: ptr("rtsp://127.0.0.1:9/quick"), Name: ptr("Quick")})
	if err != nil {
		t.Fatalf("adding a camera on a quick disk: %v", err)
	}

	slowURL := "rtsp://127.0.0.1:9/slow"
	slowID := CameraIDFromURL(slowURL)
	release := disk.holdWrites(t, "cameras/"+slowID)
	added := make(chan error, 1)
	go func() { _, err := d.a.AddCamera(ctx, CameraRequest{URL: &slowURL}); added <- err }()
	select {
	case <-disk.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow camera's record write never started")
	}

	within := time.Second
	waitFor(t, within, "the view to show the camera whose write is pending", func() bool {
		_, ok := cameraByID(d.a, slowID)
		return ok
	})
	askCtx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := d.a.RebootRelay(askCtx, "no-such-camera"); !errors.Is(err, ErrUnknownCamera) {
		t.Errorf("a request with nothing to write: got %v, want ErrUnknownCamera within %v", err, within)
	}
	taken := make(chan struct{})
	go func() {
		d.a.tell(discoveryChange{ip: "127.0.0.1", change: onvif.Change{Kind: onvif.Appeared, Device: onvif.Found{
			EndpointRef: "urn:uuid:found-meanwhile", XAddr: "http://127.0.0.1:9/onvif/device_service",
			Addr: net.ParseIP("127.0.0.1"), Name: "Porch"}}})
		close(taken)
	}()
	select {
	case <-taken:
	case <-time.After(within):
		t.Fatalf("the loop did not take a discovery within %v", within)
	}
	waitFor(t, within, "the view to show a camera discovered meanwhile", func() bool {
		for _, c := range d.a.Cameras() {
			if c.Origin == originDiscovered && c.Name == "Porch" {
				return true
			}
		}
		return false
	})
	renamed := make(chan error, 1)
	go func() {
		_, err := d.a.SetCamera(ctx, quick.ID, CameraRequest{Name: ptr("Renamed")})
		renamed <- err
	}()
	waitFor(t, within, "the view to show the second camera's change", func() bool {
		c, _ := cameraByID(d.a, quick.ID)
		return c.Name == "Renamed"
	})
	select {
	case err := <-added:
		t.Fatalf("the add was answered (%v) before its record was written", err)
	case err := <-renamed:
		t.Fatalf("the rename was answered (%v) before the write queued ahead of it", err)
	default:
	}

	release()
	for what, ch := range map[string]chan error{"add": added, "rename": renamed} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s was never answered once the disk let the write go on", what)
		}
	}
	stored, err := d.a.storedCameras()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stored[slowID]; !ok || stored[quick.ID].Name != "Renamed" {
		t.Errorf("on disk: %v, want %s and %s named Renamed", stored, slowID, quick.ID)
	}
}

// A failed store write is told, not hidden: MQTT set_camera and remove_camera reply ok:false,
// the page's add and connection settings answer an error, each saying what could not be saved
// in the words it used before the writes left the loop. Memory follows the disk, so the view
// and, after a restart, the registry are what the replies said: the rename and the removal did
// not happen, the page's camera was not added, the connection settings are not in use.
func TestAFailedStoreWriteIsReportedAndLeavesTheDiskState(t *testing.T) {
	broker := startMosquitto(t)
	dir := t.TempDir()
	disk := newTestDisk()
	cfg := ownerConfig(broker.url(), "file-0")
	d := startDaemonIn(t, dir, cfg, func(a *Agent) { a.writer.hook = disk.write })
	p := loginPage(t, d)
	cmd := newCommander(t, broker.url(), "camgate/gwc")
	waitFor(t, 10*time.Second, "camgate's MQTT connection", d.mqttUp)
	cmd.waitHeard(t)

	if r := cmd.send("add_camera", map[string]any{"camera_id": "kept", "url": "rtsp://127.0.0.1:9/kept",
		"name": "Before"}); r == nil || r["ok"] != true {
		t.Fatalf("add_camera on a working disk: %v", r)
	}
	fire := errors.New("disk on fire")
	disk.failWrites("cameras/kept", fire)
	lostURL := "rtsp://127.0.0.1:9/lost"
	lostID := CameraIDFromURL(lostURL)
	disk.failWrites("cameras/"+lostID, fire)
	disk.failWrites("settings/"+settingConnection, fire)
	const refusedStream = "refused-{camera_id}"

	failures := []struct {
		name, says string
		send       func() (ok bool, reply string)
	}{
		{"MQTT set_camera", "saving camera: ", func() (bool, string) {
			r := cmd.send("set_camera", map[string]any{"camera_id": "kept", "name": "After"})
			return r["ok"] == true, fmt.Sprint(r["error"])
		}},
		{"MQTT remove_camera", "removing camera: ", func() (bool, string) {
			r := cmd.send("remove_camera", map[string]any{"camera_id": "kept"})
			return r["ok"] == true, fmt.Sprint(r["error"])
		}},
		{"page add", "saving camera: ", func() (bool, string) {
			st, body := p.raw("POST", "/api/cameras", map[string]any{"url": lostURL})
			return st == http.StatusOK, string(body)
		}},
		{"page connection settings", "saving connection settings: ", func() (bool, string) {
			st, body := p.raw("PUT", "/api/connection", map[string]any{"flussonic": map[string]any{
				"publish": "rtsp://127.0.0.1:9/live", "username": "", "stream_name": refusedStream}})
			return st == http.StatusOK, string(body)
		}},
	}
	for _, tc := range failures {
		ok, reply := tc.send()
		if ok || !strings.Contains(reply, tc.says+fire.Error()) {
			t.Errorf("%s on a failing disk: ok=%v %q, want a failure saying %q", tc.name, ok, reply,
				tc.says+fire.Error())
		}
	}
	check := func(when string, a *Agent) {
		t.Helper()
		if c, ok := cameraByID(a, "kept"); !ok || c.Name != "Before" {
			t.Errorf("%s: camera kept is %+v (present %v), want it present and named Before", when, c, ok)
		}
		if _, ok := cameraByID(a, lostID); ok {
			t.Errorf("%s: the camera whose add failed is in the registry", when)
		}
		if got := a.config().Flussonic.StreamName; got == refusedStream {
			t.Errorf("%s: the refused connection settings are in use (stream name %q)", when, got)
		}
	}
	check("after the replies", d.a)
	if n := strings.Count(d.logs.String(), `msg="store: saving camera failed"`); n != 2 {
		t.Errorf("a failed camera write is logged once each: %d logs for two failed saves", n)
	}

	d.stop(t)
	again := startDaemonIn(t, dir, cfg, nil)
	check("after a restart", again.a)
}

// SIGTERM while record writes are pending on a slow disk: Run returns only once they are
// written, every caller gets its "ok", and the next run has every camera that was accepted.
func TestSIGTERMWritesWhatWasAccepted(t *testing.T) {
	dir := t.TempDir()
	disk := newTestDisk()
	disk.slowCameraWrites(300 * time.Millisecond)
	d := startDaemonIn(t, dir, writerConfig, func(a *Agent) { a.writer.hook = disk.write })
	const n = 5
	replies := make(chan error, n)
	var ids []string
	for i := range n {
		u := fmt.Sprintf("rtsp://127.0.0.1:9/pending-%d", i)
		ids = append(ids, CameraIDFromURL(u))
		go func() { _, err := d.a.AddCamera(context.Background(), CameraRequest{URL: &u}); replies <- err }()
	}
	waitFor(t, 10*time.Second, "the loop to take every add", func() bool {
		return len(d.a.Cameras()) == n
	})
	if stored, err := d.a.storedCameras(); err != nil || len(stored) == n {
		t.Fatalf("the slow disk already holds all %d cameras (%v): nothing is pending to test", len(stored), err)
	}
	d.stop(t)
	for range n {
		select {
		case err := <-replies:
			if err != nil {
				t.Errorf("an add accepted before SIGTERM: %v", err)
			}
		case <-time.After(5 * time.Second): // Run has answered; the asking goroutine passes it on
			t.Fatal("an add accepted before SIGTERM was never answered")
		}
	}
	again := startDaemonIn(t, dir, writerConfig, nil)
	for _, id := range ids {
		if _, ok := cameraByID(again.a, id); !ok {
			t.Errorf("camera %s, accepted before SIGTERM, is gone after the restart", id)
		}
	}
}

// While the disk is slow, a newer write of a record nobody waits for makes a pending older one
// unnecessary; a write somebody is told about (undo), one with a follow-up (then) and an
// outbox enqueue are never dropped, and what is left keeps its order. A batch left empty goes,
// unless someone waits for its reply.
func TestCoalesceDropsOnlySupersededWritesNobodyWaitsFor(t *testing.T) {
	w := func(key string, v string) recordWrite { return recordWrite{key: key, value: []byte(v)} }
	told := recordWrite{key: "cameras/c", value: []byte("c1"), undo: true}
	enqueue := recordWrite{queue: mqttQueue}
	followed := recordWrite{key: "settings/mqtt_registered", then: func(error) {}}
	waiting := make(chan result, 1)
	pending := []*writeBatch{
		{writes: []recordWrite{w("settings/discovered", "d1"), told, w("settings/agent_ids", "a1")}},
		{writes: []recordWrite{enqueue, w("settings/discovered", "d2"), followed}},
		{writes: []recordWrite{w("settings/discovered", "d2b")}},                 // nothing left: goes
		{writes: []recordWrite{w("settings/discovered", "d2c")}, reply: waiting}, // stays for its reply
	}
	pending = coalesce(pending, &writeBatch{writes: []recordWrite{w("settings/discovered", "d3"),
		{key: "cameras/c", value: []byte("c2"), undo: true}, enqueue, {key: "settings/mqtt_registered"}}})
	var got []string
	for _, b := range pending {
		got = append(got, "|")
		for _, rw := range b.writes {
			got = append(got, rw.key+"="+string(rw.value))
		}
	}
	want := []string{"|", "cameras/c=c1", "settings/agent_ids=a1", "|", "=", "settings/mqtt_registered=", "|"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pending after a newer batch: %q, want %q", got, want)
	}
}

// The backlog of an event sink no longer in the config has no receiver: it is dropped at
// start, by the recordWriter like every store write the loop makes, and the log says so.
func TestAnOrphanSinkBacklogIsDroppedOffTheLoop(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "camgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	orphan := sinkQueue("http://127.0.0.1:9/events-of-a-removed-sink")
	if err := db.Outbox().Enqueue(context.Background(), orphan,
		store.Message{Class: store.ClassEvent, Payload: []byte(`{"event":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	purged := make(chan struct{}, 1)
	d := startDaemonIn(t, dir, writerConfig, func(a *Agent) {
		a.writer.hook = func(key string) error {
			if key == "outbox/"+orphan {
				purged <- struct{}{}
			}
			return nil
		}
	})
	select {
	case <-purged:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan queue was never purged through the recordWriter")
	}
	waitFor(t, 5*time.Second, "the orphan queue to be empty", func() bool {
		return d.a.db.Outbox().Stats().Queues[orphan].Depth == 0
	})
	if !strings.Contains(d.logs.String(), "dropped the backlog of an event sink no longer configured") {
		t.Error("the drop is not logged")
	}
}

// SC learns of a camera from its registration: the camera's state never reaches the broker
// before its config, however slow the disk that queues the registration (SPEC §6 delivers
// the queue in order; the recordWriter queues the registration after the view shows the camera).
func TestACameraStateFollowsItsRegistration(t *testing.T) {
	broker := startMosquitto(t)
	disk := newTestDisk()
	d := startDaemonIn(t, t.TempDir(), ownerConfig(broker.url(), "file-0"), func(a *Agent) { a.writer.hook = disk.write })
	waitFor(t, 10*time.Second, "camgate's MQTT connection", d.mqttUp)

	var mu sync.Mutex
	var topics []string
	broker.subscribe(t, "test-order-reader", "camgate/gwc/cameras/late/+", func(m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		topics = append(topics, m.Topic()[strings.LastIndex(m.Topic(), "/")+1:])
	})

	release := disk.holdWrites(t, "outbox/"+mqttQueue) // the registration waits; the view does not
	added := make(chan error, 1)
	go func() {
		_, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: "late", URL: ptr("rtsp://127.0.0.1:9/late")})
		added <- err
	}()
	<-disk.held
	waitFor(t, 5*time.Second, "the view to show the camera", func() bool { _, ok := cameraByID(d.a, "late"); return ok })
	time.Sleep(2500 * time.Millisecond) // two rounds of camera states, at 1 s each
	release()
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the camera's config and state at the broker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(topics, "config") && slices.Contains(topics, "state")
	})
	mu.Lock()
	defer mu.Unlock()
	if topics[0] != "config" {
		t.Errorf("the broker got %v: the camera's state came before its registration", topics)
	}
}
