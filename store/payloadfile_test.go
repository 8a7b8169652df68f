package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// jpeg is a payload big enough to be kept in a file, marked with n so that a test can tell
// which one it got back.
func jpeg(n int) []byte {
	b := bytes.Repeat([]byte{0xa5}, filePayloadMin+1000)
	copy(b, fmt.Sprintf("n=%08d;", n))
	return b
}

func jpegNumber(t testing.TB, b []byte) int {
	t.Helper()
	s, ok := strings.CutPrefix(string(b[:min(len(b), 11)]), "n=")
	n, err := strconv.Atoi(strings.TrimSuffix(s, ";"))
	if !ok || err != nil || len(b) != filePayloadMin+1000 {
		t.Fatalf("payload of %d bytes starting %q is none of ours", len(b), b[:min(len(b), 11)])
	}
	return n
}

func snapshot(n int) Message {
	return Message{Class: ClassEvent, Topic: "cameras/porch/snapshot", Retain: true, Latest: true, Payload: jpeg(n)}
}

// payloadFiles lists the payload directory of the database at path.
func payloadFiles(t testing.TB, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(path + ".payloads")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// referencedFiles lists the payload files the records of the database at path refer to.
func referencedFiles(t testing.TB, db *DB) []string {
	t.Helper()
	var names []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !strings.HasPrefix(string(name), queuePrefix) {
				return nil
			}
			return b.ForEach(func(_, v []byte) error {
				m, err := decodeRecord(0, v)
				if err != nil {
					return err
				}
				if m.file.name != "" {
					names = append(names, m.file.name)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// A big payload lives in a file of its own while its message is queued, and only then: the file
// appears with the commit that queues it and goes with the commit that removes it, whatever
// removes it. Peek gives the payload back whole, and the bound counts it.
func TestOutboxBigPayloadFollowsItsMessage(t *testing.T) {
	db, path := openTest(t, Options{OutboxMaxBytes: 4 * int64(len(jpeg(0))+200)})
	o := db.Outbox()
	small := event("small")
	steps := []struct {
		name      string
		do        func() error
		wantFiles int
		wantHead  []int // jpegNumber of each big payload queued in "mqtt", in order
	}{
		{"a small payload stays inline", func() error { return o.Enqueue(context.Background(), "mqtt", small) },
			0, nil},
		{"a snapshot is kept in a file", func() error { return o.Enqueue(context.Background(), "mqtt", snapshot(1)) },
			1, []int{1}},
		{"a newer snapshot replaces it, file and all",
			func() error { return o.Enqueue(context.Background(), "mqtt", snapshot(2)) }, 1, []int{2}},
		{"a big event is not keep-latest: both stay", func() error {
			return o.Enqueue(context.Background(), "mqtt", Message{Class: ClassEvent, Payload: jpeg(3)},
				Message{Class: ClassTelemetry, Payload: jpeg(4)})
		}, 3, []int{2, 3, 4}},
		{"acking removes the file", func() error {
			msgs := peekAll(t, o, "mqtt")
			return o.Ack("mqtt", msgs[1].Seq) // snapshot 2
		}, 2, []int{3, 4}},
		{"over the bound, the dropped telemetry's file goes", func() error {
			return o.Enqueue(context.Background(), "mqtt", Message{Class: ClassEvent, Payload: jpeg(5)},
				Message{Class: ClassEvent, Payload: jpeg(6)}, Message{Class: ClassEvent, Payload: jpeg(7)})
		}, 4, []int{3, 5, 6, 7}},
		{"in another queue", func() error { return o.Enqueue(context.Background(), "sink:0", snapshot(8)) },
			4, []int{5, 6, 7}},
		{"purging a queue removes its files", func() error { _, err := o.Purge("mqtt"); return err }, 1, nil},
		{"purging all removes every file", func() error { _, err := o.Purge(""); return err }, 0, nil},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		files, refs := payloadFiles(t, path), referencedFiles(t, db)
		slices.Sort(files)
		if len(files) != step.wantFiles || !slices.Equal(files, refs) {
			t.Errorf("%s: payload files %q, records refer to %q, want %d of them", step.name, files, refs, step.wantFiles)
		}
		var head []int
		var total int64
		for _, m := range peekAll(t, o, "mqtt") {
			total += m.size()
			if len(m.Payload) >= filePayloadMin {
				head = append(head, jpegNumber(t, m.Payload))
			}
		}
		if !slices.Equal(head, step.wantHead) {
			t.Errorf("%s: big payloads queued %v, want %v", step.name, head, step.wantHead)
		}
		if got := o.Stats().Queues["mqtt"].Bytes; got != total {
			t.Errorf("%s: Stats counts %d bytes for mqtt, its messages are %d", step.name, got, total)
		}
	}
}

// A payload file that does not match its record (cut short, changed) is refused, not sent as
// it is; the other messages still go.
func TestOutboxRefusesDamagedPayloadFile(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(file string) error
	}{
		{"cut short", func(file string) error { return os.Truncate(file, 100) }},
		{"changed", func(file string) error {
			f, err := os.OpenFile(file, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("X"), 5000)
			return err
		}},
		{"missing", os.Remove},
	} {
		t.Run(damage.name, func(t *testing.T) {
			db, path := openTest(t, Options{})
			o := db.Outbox()
			enqueue(t, o, "mqtt", event("before"), snapshot(1), event("after"))
			files := payloadFiles(t, path)
			if len(files) != 1 {
				t.Fatalf("payload files %q, want one", files)
			}
			if err := damage.do(filepath.Join(path+".payloads", files[0])); err != nil {
				t.Fatal(err)
			}
			if got := payloads(peekAll(t, o, "mqtt")); !slices.Equal(got, []string{"before", "after"}) {
				t.Errorf("Peek = %q, want the two small events only", got)
			}
		})
	}
}

// Open deletes the payload files no record refers to (a crash between a file's write and its
// commit leaves one) and leaves alone what is not a payload file.
func TestOpenSweepsUnreferencedPayloadFiles(t *testing.T) {
	db, path := openTest(t, Options{})
	enqueue(t, db.Outbox(), "mqtt", snapshot(1))
	kept := payloadFiles(t, path)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	dir := path + ".payloads"
	orphan := strings.Repeat("0f", payloadNameLen/2)
	for _, name := range []string{orphan, "README"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := payloadFiles(t, path)
	want := append(slices.Clone(kept), "README")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after Open the payload directory holds %q, want %q", got, want)
	}
	if n := jpegNumber(t, peekAll(t, db.Outbox(), "mqtt")[0].Payload); n != 1 {
		t.Errorf("queued snapshot %d, want 1", n)
	}
}

// The child half of TestOutboxSnapshotSurvivesSIGKILL: replace one camera's snapshot again and
// again, print each number once Enqueue has returned, and be killed by the parent or, at the
// given crash point, by itself.
func snapshotCrashChild(path, point string) {
	calls := 0
	db, err := open(path, Options{}, tuning{migrations: migrations(), crashAt: func(p string) {
		if p == point {
			if calls++; calls == 6 {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // the signal is on its way
			}
		}
	}})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	deadline := time.Now().Add(60 * time.Second) // never outlive a parent that died
	for n := 1; time.Now().Before(deadline); n++ {
		err := db.Outbox().Enqueue(context.Background(), "mqtt", snapshot(n), event(fmt.Sprint("motion ", n)))
		if err != nil {
			fmt.Println("enqueue:", err)
			os.Exit(1)
		}
		fmt.Println("durable", n)
	}
	os.Exit(0)
}

// Killed between a snapshot file's write and its commit, between the commit and the removal of
// the snapshot it replaced, or anywhere mid-stream: after a restart the queue's snapshot is the
// last one Enqueue returned for or the one in flight, whole, never a missing file, and no file
// is left over.
func TestOutboxSnapshotSurvivesSIGKILL(t *testing.T) {
	if path := os.Getenv("CAMGATE_STORE_SNAPSHOT_CRASH"); path != "" {
		snapshotCrashChild(path, os.Getenv("CAMGATE_STORE_SNAPSHOT_CRASH_AT"))
		return
	}
	for _, point := range []string{"payload written", "committed", "mid-stream"} {
		t.Run(point, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "camgate.db")
			cmd, sc := startChild(t, "TestOutboxSnapshotSurvivesSIGKILL",
				"CAMGATE_STORE_SNAPSHOT_CRASH="+path, "CAMGATE_STORE_SNAPSHOT_CRASH_AT="+point)
			last := 0
			for sc.Scan() {
				n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "durable "))
				if err != nil {
					t.Errorf("child: %s", sc.Text())
					continue
				}
				last = n
				if point == "mid-stream" && n == 40 {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child ended with %v after snapshot %d, not killed", err, last)
			}
			if point != "mid-stream" && last != 5 {
				t.Fatalf("child killed after snapshot %d returned, want 5 (the sixth crash point)", last)
			}

			db, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("reopen after SIGKILL: %v", err)
			}
			defer db.Close()
			var snaps []int
			for _, m := range peekAll(t, db.Outbox(), "mqtt") {
				if m.Latest {
					snaps = append(snaps, jpegNumber(t, m.Payload))
				}
			}
			if len(snaps) != 1 || snaps[0] < last || snaps[0] > last+1 {
				t.Errorf("queued snapshots %v after the kill, want one: %d (the last durable) or %d (in flight)",
					snaps, last, last+1)
			}
			files, refs := payloadFiles(t, path), referencedFiles(t, db)
			slices.Sort(files)
			if !slices.Equal(files, refs) || len(refs) != 1 {
				t.Errorf("payload files %q, records refer to %q: want the one snapshot's file only", files, refs)
			}
		})
	}
}

// A payload that its caller keeps in a file (the agent's snapshots/<camera>.jpg) is linked, not
// written again; replacing that file by rename leaves the queued payload as it was. A file that
// does not hold the payload is not trusted: the payload is written instead.
func TestOutboxLinksAPayloadFile(t *testing.T) {
	db, path := openTest(t, Options{})
	o := db.Outbox()
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		contents []byte
		wantLink bool
	}{
		{"holding the payload", jpeg(1), true},
		{"holding something else", jpeg(2), false},
	} {
		src := filepath.Join(dir, "porch.jpg")
		if err := os.WriteFile(src, tc.contents, 0o600); err != nil {
			t.Fatal(err)
		}
		m := snapshot(1)
		m.PayloadFile = src
		enqueue(t, o, "mqtt", m)
		files := payloadFiles(t, path)
		if len(files) != 1 {
			t.Fatalf("%s: payload files %q, want one", tc.name, files)
		}
		queued, err := os.Stat(filepath.Join(path+".payloads", files[0]))
		if err != nil {
			t.Fatal(err)
		}
		given, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		if os.SameFile(queued, given) != tc.wantLink {
			t.Errorf("%s: the queued payload file is the caller's: %v, want %v", tc.name, !tc.wantLink, tc.wantLink)
		}
		// The caller replaces its file the only way it may: a new file renamed over it.
		if err := os.WriteFile(src+".tmp", jpeg(9), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(src+".tmp", src); err != nil {
			t.Fatal(err)
		}
		if n := jpegNumber(t, peekAll(t, o, "mqtt")[0].Payload); n != 1 {
			t.Errorf("%s: queued snapshot %d after the caller replaced its file, want 1", tc.name, n)
		}
	}
}

// A big payload whose Enqueue fails before the writer took it (a closed store, a cancelled
// context) leaves no file behind. (With a cancelled context the writer may still take it and
// commit: then the file is the record's.)
func TestOutboxFailedEnqueueLeavesNoPayloadFile(t *testing.T) {
	db, path := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		_ = db.Outbox().Enqueue(ctx, "mqtt", snapshot(i))
	}
	// An Enqueue that gave up may still be committing: the writer answers this Ack after it.
	if err := db.Outbox().Ack("mqtt", 1<<62); err != nil {
		t.Fatal(err)
	}
	files, refs := payloadFiles(t, path), referencedFiles(t, db)
	slices.Sort(files)
	if !slices.Equal(files, refs) {
		t.Errorf("payload files %q after cancelled Enqueues, records refer to %q", files, refs)
	}
	if _, err := db.Outbox().Purge(""); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Outbox().Enqueue(context.Background(), "mqtt", snapshot(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue on a closed store = %v, want ErrClosed", err)
	}
	if files := payloadFiles(t, path); len(files) != 0 {
		t.Errorf("payload files %q after an Enqueue on a closed store, want none", files)
	}
}
