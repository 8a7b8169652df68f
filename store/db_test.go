package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestTables(t *testing.T) {
	db, path := openTest(t, Options{})
	for _, tc := range []struct {
		name  string
		table *Table
	}{
		{"cameras", db.Cameras()},
		{"settings", db.Settings()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := tc.table
			if _, ok, err := tb.Get("x"); ok || err != nil {
				t.Fatalf("Get of a missing key = %v, %v; want not found", ok, err)
			}
			for k, v := range map[string]string{"porch": `{"name":"Porch"}`, "yard": `{}`, "empty": ""} {
				if err := tb.Put(k, []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tb.Put("yard", []byte(`{"name":"Yard"}`)); err != nil {
				t.Fatal(err)
			}
			if err := tb.Delete("porch"); err != nil {
				t.Fatal(err)
			}
			if err := tb.Delete("never there"); err != nil {
				t.Errorf("Delete of a missing key: %v", err)
			}
			if err := tb.Put("", []byte("x")); err == nil {
				t.Error("Put with an empty key succeeded")
			}
			if v, ok, err := tb.Get("yard"); !ok || err != nil || string(v) != `{"name":"Yard"}` {
				t.Errorf("Get(yard) = %q, %v, %v", v, ok, err)
			}
		})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []*Table{db.Cameras(), db.Settings()} {
		all, err := table.All()
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || string(all["yard"]) != `{"name":"Yard"}` || string(all["empty"]) != "" {
			t.Errorf("%s after reopen = %q, want yard and empty", table.bucket, all)
		}
	}
}

func TestOutboxPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "camgate.db")
	db, err := Open(path, Options{OutboxMaxBytes: 3 * unit})
	if err != nil {
		t.Fatal(err)
	}
	o := db.Outbox()
	enqueue(t, o, "mqtt", msg(ClassTelemetry, "t1"), msg(ClassRegistration, "r1"), msg(ClassEvent, "e1"),
		msg(ClassEvent, "e2"), msg(ClassEvent, "e3"))
	enqueue(t, o, "sink:0", Message{Class: ClassEvent, Topic: "x", Payload: nil})
	first := peekAll(t, o, "mqtt")
	if err := o.Ack("mqtt", first[0].Seq); err != nil {
		t.Fatal(err)
	}
	before := o.Stats()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{OutboxMaxBytes: 3 * unit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o = db.Outbox()
	after := o.Stats()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("Stats after reopen = %+v\nbefore close     = %+v", after, before)
	}
	if after.DroppedTelemetry != 1 || after.DroppedEvents != 2 {
		t.Errorf("dropped counters after reopen = %d/%d, want 1/2", after.DroppedTelemetry, after.DroppedEvents)
	}
	got := peekAll(t, o, "mqtt")
	if !slices.Equal(seqs(got), seqs(first[1:])) || !slices.EqualFunc(got, first[1:], func(a, b Message) bool {
		return a.Class == b.Class && string(a.Payload) == string(b.Payload) && a.Enqueued.Equal(b.Enqueued)
	}) {
		t.Errorf("mqtt after reopen = %+v\nwant %+v", got, first[1:])
	}
	enqueue(t, o, "mqtt", msg(ClassRegistration, "r2"))
	if got := peekAll(t, o, "mqtt"); got[len(got)-1].Seq <= first[len(first)-1].Seq {
		t.Errorf("seq after reopen = %d, want above %d", got[len(got)-1].Seq, first[len(first)-1].Seq)
	}
}

func TestOpenLockedByAnotherHolder(t *testing.T) {
	_, path := openTest(t, Options{})
	// flock is per open file description, so a second Open in this process contends like another
	// process would.
	start := time.Now()
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("second Open waited %v instead of giving up", d)
	}
}

func schemaVersionOf(t *testing.T, path string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var v uint64
	if err := bdb.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func setSchemaVersion(t *testing.T, path string, v uint64) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return putCounter(b, keySchema, v)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersion(t *testing.T) {
	// A fictitious next version that moves every camera under a "v2:" prefix.
	v2 := append(migrations(), migration{from: SchemaVersion, step: func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCameras)
		old := map[string][]byte{}
		if err := b.ForEach(func(k, v []byte) error { old[string(k)] = slices.Clone(v); return nil }); err != nil {
			return err
		}
		for k, v := range old {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
			if err := b.Put([]byte("v2:"+k), v); err != nil {
				return err
			}
		}
		return nil
	}})
	failing := append(migrations(), migration{from: SchemaVersion, step: func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketCameras).Put([]byte("half"), []byte("done")); err != nil {
			return err
		}
		return errors.New("disk on fire")
	}})

	for _, tc := range []struct {
		name        string
		fileVersion uint64 // 0: a new file
		steps       []migration
		wantErr     error
		wantVersion uint64
		wantCameras []string
	}{
		{name: "new file gets the current version", steps: migrations(), wantVersion: SchemaVersion},
		{name: "current version opens as is", fileVersion: SchemaVersion, steps: migrations(), wantVersion: SchemaVersion,
			wantCameras: []string{"porch"}},
		{name: "older version is migrated", fileVersion: SchemaVersion, steps: v2, wantVersion: SchemaVersion + 1,
			wantCameras: []string{"v2:porch"}},
		{name: "version 1 (payloads inline only) opens as version 2", fileVersion: 1, steps: migrations(),
			wantVersion: 2, wantCameras: []string{"porch"}},
		{name: "newer version is refused and left alone", fileVersion: 7, steps: migrations(), wantErr: ErrSchemaTooNew,
			wantVersion: 7, wantCameras: []string{"porch"}},
		{name: "failed migration leaves the old version intact", fileVersion: SchemaVersion, steps: failing,
			wantErr: errors.New("disk on fire"), wantVersion: SchemaVersion, wantCameras: []string{"porch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "camgate.db")
			if tc.fileVersion != 0 {
				db, err := Open(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Cameras().Put("porch", []byte("{}")); err != nil {
					t.Fatal(err)
				}
				db.Close()
				setSchemaVersion(t, path, tc.fileVersion)
			}
			db, err := open(path, Options{}, tuning{migrations: tc.steps})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("open: %v", err)
			case tc.wantErr != nil && (err == nil || !strings.Contains(err.Error(), tc.wantErr.Error())):
				t.Fatalf("open = %v, want %v", err, tc.wantErr)
			case err == nil:
				all, _ := db.Cameras().All()
				var keys []string
				for k := range all {
					keys = append(keys, k)
				}
				if !slices.Equal(keys, tc.wantCameras) {
					t.Errorf("cameras = %q, want %q", keys, tc.wantCameras)
				}
				db.Close()
			}
			if errors.Is(tc.wantErr, ErrSchemaTooNew) && !errors.Is(err, ErrSchemaTooNew) {
				t.Errorf("error %v does not wrap ErrSchemaTooNew", err)
			}
			if v := schemaVersionOf(t, path); v != tc.wantVersion {
				t.Errorf("schema version on disk = %d, want %d", v, tc.wantVersion)
			}
		})
	}
}

// The child half of TestOutboxSurvivesSIGKILL: enqueue from several goroutines and print each
// message's name only after Enqueue has returned, until killed.
func crashChild(path string) {
	db, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second) // never outlive a parent that died
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("%d/%d", g, i)
				if err := db.Outbox().Enqueue(context.Background(), "mqtt", event(name)); err != nil {
					fmt.Println("enqueue:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println("durable", name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// startChild runs this test binary's test in a child process with env added, and returns it
// with a scanner of its output.
func startChild(t *testing.T, test string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}

func TestOutboxSurvivesSIGKILL(t *testing.T) {
	if path := os.Getenv("CAMGATE_STORE_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "camgate.db")
	cmd, sc := startChild(t, "TestOutboxSurvivesSIGKILL", "CAMGATE_STORE_CRASH_CHILD="+path)
	var durable []string
	killed := false
	for sc.Scan() {
		line := sc.Text()
		name, ok := strings.CutPrefix(line, "durable ")
		if !ok {
			t.Errorf("child: %s", line)
			continue
		}
		durable = append(durable, name)
		if len(durable) == 400 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil { // mid-stream: commits are in flight
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait() // killed on purpose: its exit status says only that
	if !killed {
		t.Fatalf("child ended after %d messages without being killed", len(durable))
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer db.Close()
	stored := payloads(peekAll(t, db.Outbox(), "mqtt"))
	have := make(map[string]bool, len(stored))
	next := map[string]int{}
	for _, name := range stored {
		have[name] = true
		var g, i int
		if _, err := fmt.Sscanf(name, "%d/%d", &g, &i); err != nil {
			t.Errorf("stored message %q: %v", name, err)
			continue
		}
		if key := fmt.Sprint(g); i != next[key] {
			t.Errorf("goroutine %d: stored message %d after %d: order lost", g, i, next[key]-1)
		} else {
			next[key]++
		}
	}
	for _, name := range durable {
		if !have[name] {
			t.Errorf("message %s was reported durable but is gone after SIGKILL", name)
		}
	}
	if st := db.Outbox().Stats(); st.Depth != len(stored) {
		t.Errorf("Stats depth after reopen = %d, want %d", st.Depth, len(stored))
	}
	t.Logf("%d messages reported durable before SIGKILL, %d on disk after", len(durable), len(stored))
}

// Weeks of churn: 200,000 messages through a small bound, consumer acking and the bound dropping,
// must not grow the file past the bound plus a fixed slack.
func TestOutboxFileBoundedUnderChurn(t *testing.T) {
	const (
		bound   = 256 << 10
		total   = 200_000
		perTx   = 100
		payload = 300
		slack   = 1 << 20
	)
	path := filepath.Join(t.TempDir(), "camgate.db")
	// fsync changes nothing in the file's layout; skipping it keeps 2,000 commits fast.
	db, err := open(path, Options{OutboxMaxBytes: bound}, tuning{noSync: true, migrations: migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o := db.Outbox()
	body := make([]byte, payload)
	var maxSize int64
	for sent := 0; sent < total; sent += perTx {
		batch := make([]Message, perTx)
		for i := range batch {
			batch[i] = Message{Class: Class(1 + (sent+i)%3), Topic: "camgate/gw/cameras/cam-0011223344/events", Payload: body}
		}
		enqueue(t, o, "mqtt", batch...)
		// The consumer keeps up with most but not all: the bound drops the rest.
		head, err := o.Peek("mqtt", perTx*6/10)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Ack("mqtt", seqs(head)...); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err == nil {
			maxSize = max(maxSize, fi.Size())
		}
	}
	st := o.Stats()
	if st.Bytes > bound {
		t.Errorf("outbox holds %d bytes, over its bound of %d", st.Bytes, bound)
	}
	if st.DroppedTelemetry == 0 || st.DroppedEvents == 0 {
		t.Errorf("churn dropped %d telemetry and %d events; the test means to exercise both",
			st.DroppedTelemetry, st.DroppedEvents)
	}
	if maxSize > 2*bound+slack {
		t.Errorf("file grew to %d bytes, want at most twice the bound %d + slack %d", maxSize, bound, slack)
	}
	t.Logf("file at most %d bytes for a %d-byte bound; %d telemetry and %d events dropped",
		maxSize, bound, st.DroppedTelemetry, st.DroppedEvents)
}
