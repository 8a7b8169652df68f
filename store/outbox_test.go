package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openTest(t testing.TB, opts Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "camgate.db")
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func enqueue(t testing.TB, o *Outbox, queue string, msgs ...Message) {
	t.Helper()
	if err := o.Enqueue(context.Background(), queue, msgs...); err != nil {
		t.Fatalf("Enqueue(%q): %v", queue, err)
	}
}

func peekAll(t testing.TB, o *Outbox, queue string) []Message {
	t.Helper()
	msgs, err := o.Peek(queue, 1<<30)
	if err != nil {
		t.Fatalf("Peek(%q): %v", queue, err)
	}
	return msgs
}

func payloads(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}

func seqs(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func event(p string) Message { return Message{Class: ClassEvent, Payload: []byte(p)} }

func TestOutboxFIFOAndQueueIndependence(t *testing.T) {
	db, _ := openTest(t, Options{})
	o := db.Outbox()
	before := time.Now()
	enqueue(t, o, "mqtt", Message{Class: ClassRegistration, Topic: "p/cameras/a/config", Retain: true,
		Payload: []byte("m1")})
	enqueue(t, o, "sink:0", event("s1"), event("s2"))
	enqueue(t, o, "mqtt", event("m2"), Message{Class: ClassTelemetry, Topic: "p/telemetry", Payload: []byte("m3")})
	enqueue(t, o, "sink:0", event("s3"))

	for _, tc := range []struct {
		queue string
		want  []string
	}{
		{"mqtt", []string{"m1", "m2", "m3"}},
		{"sink:0", []string{"s1", "s2", "s3"}},
		{"sink:1", []string{}},
	} {
		got := peekAll(t, o, tc.queue)
		if !slices.Equal(payloads(got), tc.want) {
			t.Errorf("Peek(%q) = %q, want %q", tc.queue, payloads(got), tc.want)
		}
		if s := seqs(got); !slices.IsSorted(s) || len(slices.Compact(s)) != len(got) {
			t.Errorf("Peek(%q) seqs %v not strictly increasing", tc.queue, s)
		}
		for _, m := range got {
			if m.Enqueued.Before(before.Add(-time.Second)) || m.Enqueued.After(time.Now().Add(time.Second)) {
				t.Errorf("Peek(%q) message %d Enqueued = %v, want about now", tc.queue, m.Seq, m.Enqueued)
			}
		}
	}
	head := peekAll(t, o, "mqtt")[0]
	if head.Class != ClassRegistration || head.Topic != "p/cameras/a/config" || !head.Retain {
		t.Errorf("head of mqtt = %+v, want the registration with its topic and retain flag", head)
	}
	if got, _ := o.Peek("mqtt", 2); !slices.Equal(payloads(got), []string{"m1", "m2"}) {
		t.Errorf("Peek(mqtt, 2) = %q, want the two oldest", payloads(got))
	}
	if got, _ := o.Peek("mqtt", 0); len(got) != 0 {
		t.Errorf("Peek(mqtt, 0) = %d messages, want none", len(got))
	}

	st := o.Stats()
	if st.Depth != 6 || st.Queues["mqtt"].Depth != 3 || st.Queues["sink:0"].Depth != 3 {
		t.Errorf("Stats depths = %d total, %+v; want 6, 3 and 3", st.Depth, st.Queues)
	}
	wantBytes := int64(len("p/cameras/a/config") + len("p/telemetry") + 6*2 + 6*messageOverhead)
	if st.Bytes != wantBytes || st.MaxBytes != DefaultOutboxMaxBytes {
		t.Errorf("Stats bytes = %d of %d, want %d of %d", st.Bytes, st.MaxBytes, wantBytes, DefaultOutboxMaxBytes)
	}
}

func TestOutboxAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		ack  func(all []Message) (queue string, seqs []uint64)
		want []string
	}{
		{"head", func(all []Message) (string, []uint64) { return "q", seqs(all[:1]) }, []string{"b", "c", "d"}},
		{"a batch", func(all []Message) (string, []uint64) { return "q", seqs(all[:3]) }, []string{"d"}},
		{"out of order, middle", func(all []Message) (string, []uint64) { return "q", []uint64{all[2].Seq, all[1].Seq} },
			[]string{"a", "d"}},
		{"unknown seqs are ignored", func(all []Message) (string, []uint64) { return "q", []uint64{0, 999, all[3].Seq + 1} },
			[]string{"a", "b", "c", "d"}},
		{"twice is once", func(all []Message) (string, []uint64) { return "q", []uint64{all[0].Seq, all[0].Seq} },
			[]string{"b", "c", "d"}},
		{"another queue's ack leaves this one", func(all []Message) (string, []uint64) { return "other", seqs(all) },
			[]string{"a", "b", "c", "d"}},
		{"unknown queue", func(all []Message) (string, []uint64) { return "nope", seqs(all) }, []string{"a", "b", "c", "d"}},
		{"everything", func(all []Message) (string, []uint64) { return "q", seqs(all) }, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t, Options{})
			o := db.Outbox()
			enqueue(t, o, "q", event("a"), event("b"), event("c"), event("d"))
			enqueue(t, o, "other", event("x"), event("y"))
			queue, ack := tc.ack(peekAll(t, o, "q"))
			if err := o.Ack(queue, ack...); err != nil {
				t.Fatalf("Ack: %v", err)
			}
			if got := payloads(peekAll(t, o, "q")); !slices.Equal(got, tc.want) {
				t.Errorf("q after ack = %q, want %q", got, tc.want)
			}
			st := o.Stats()
			if st.Queues["q"].Depth != len(tc.want) || st.Queues["q"].Bytes != int64(len(tc.want)*(1+messageOverhead)) {
				t.Errorf("Stats q = %+v, want depth %d", st.Queues["q"], len(tc.want))
			}
		})
	}
}

// size budget of one test message with a 36-byte payload: exactly 100 bytes.
const unit = 36 + messageOverhead

func msg(c Class, name string) Message {
	return Message{Class: c, Payload: fmt.Appendf(nil, "%-36s", name)}
}

func TestOutboxDropOrder(t *testing.T) {
	type put struct {
		queue string
		m     Message
	}
	const (
		T = ClassTelemetry
		E = ClassEvent
		R = ClassRegistration
	)
	for _, tc := range []struct {
		name          string
		max           int64
		puts          []put
		want          map[string][]string
		dropTelemetry uint64
		dropEvents    uint64
	}{
		{
			name: "under the bound nothing is dropped",
			max:  3 * unit,
			puts: []put{{"a", msg(T, "t1")}, {"a", msg(E, "e1")}, {"a", msg(R, "r1")}},
			want: map[string][]string{"a": {"t1", "e1", "r1"}},
		},
		{
			name:          "telemetry goes first, oldest first, even behind events",
			max:           3 * unit,
			puts:          []put{{"a", msg(E, "e1")}, {"a", msg(T, "t1")}, {"a", msg(T, "t2")}, {"a", msg(E, "e2")}},
			want:          map[string][]string{"a": {"e1", "t2", "e2"}},
			dropTelemetry: 1,
		},
		{
			name: "then the oldest events",
			max:  3 * unit,
			puts: []put{
				{"a", msg(R, "r1")}, {"a", msg(E, "e1")}, {"a", msg(E, "e2")}, {"a", msg(E, "e3")}, {"a", msg(E, "e4")},
			},
			want:       map[string][]string{"a": {"r1", "e3", "e4"}},
			dropEvents: 2,
		},
		{
			name:          "the bound spans queues; the oldest telemetry of any queue goes",
			max:           3 * unit,
			puts:          []put{{"b", msg(T, "bt1")}, {"a", msg(T, "at1")}, {"a", msg(E, "ae1")}, {"b", msg(E, "be1")}},
			want:          map[string][]string{"a": {"at1", "ae1"}, "b": {"be1"}},
			dropTelemetry: 1,
		},
		{
			name:          "a new telemetry message is dropped when only registrations remain",
			max:           2 * unit,
			puts:          []put{{"a", msg(R, "r1")}, {"a", msg(R, "r2")}, {"a", msg(T, "t1")}},
			want:          map[string][]string{"a": {"r1", "r2"}},
			dropTelemetry: 1,
		},
		{
			name: "registrations are never dropped, even over the bound",
			max:  2 * unit,
			puts: []put{
				{"a", msg(R, "r1")}, {"a", msg(E, "e1")}, {"b", msg(R, "r2")}, {"a", msg(R, "r3")}, {"b", msg(T, "t1")},
			},
			want:          map[string][]string{"a": {"r1", "r3"}, "b": {"r2"}},
			dropTelemetry: 1, dropEvents: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t, Options{OutboxMaxBytes: tc.max})
			o := db.Outbox()
			for _, p := range tc.puts {
				enqueue(t, o, p.queue, p.m)
			}
			for queue, want := range tc.want {
				got := payloads(peekAll(t, o, queue))
				for i := range got {
					got[i] = trimSpace(got[i])
				}
				if !slices.Equal(got, want) {
					t.Errorf("queue %s = %q, want %q", queue, got, want)
				}
			}
			st := o.Stats()
			if st.DroppedTelemetry != tc.dropTelemetry || st.DroppedEvents != tc.dropEvents {
				t.Errorf("dropped telemetry/events = %d/%d, want %d/%d",
					st.DroppedTelemetry, st.DroppedEvents, tc.dropTelemetry, tc.dropEvents)
			}
		})
	}
}

func trimSpace(s string) string {
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

func TestOutboxBurstDropsInOneCommit(t *testing.T) {
	db, _ := openTest(t, Options{OutboxMaxBytes: 10 * unit})
	o := db.Outbox()
	var burst []Message
	for i := range 25 {
		burst = append(burst, msg(ClassTelemetry, fmt.Sprint("t", i)), msg(ClassEvent, fmt.Sprint("e", i)))
	}
	enqueue(t, o, "mqtt", burst...)
	got := payloads(peekAll(t, o, "mqtt"))
	for i := range got {
		got[i] = trimSpace(got[i])
	}
	want := []string{"e15", "e16", "e17", "e18", "e19", "e20", "e21", "e22", "e23", "e24"}
	if !slices.Equal(got, want) {
		t.Errorf("after a burst over the bound the queue holds %q, want the newest events %q", got, want)
	}
	if st := o.Stats(); st.DroppedTelemetry != 25 || st.DroppedEvents != 15 || st.Bytes != 10*unit {
		t.Errorf("Stats = %+v, want 25 telemetry and 15 events dropped and exactly the bound used", st)
	}
}

func TestOutboxEnqueueRejects(t *testing.T) {
	db, _ := openTest(t, Options{OutboxMaxBytes: 1000})
	o := db.Outbox()
	for _, tc := range []struct {
		name  string
		queue string
		m     Message
	}{
		{"empty queue name", "", event("x")},
		{"long queue name", string(make([]byte, 201)), event("x")},
		{"class zero", "q", Message{Payload: []byte("x")}},
		{"class 4", "q", Message{Class: 4, Payload: []byte("x")}},
		{"larger than the whole bound", "q", Message{Class: ClassRegistration, Payload: make([]byte, 1000)}},
	} {
		if err := o.Enqueue(context.Background(), tc.queue, tc.m); err == nil {
			t.Errorf("%s: Enqueue succeeded, want an error", tc.name)
		}
	}
	if st := o.Stats(); st.Depth != 0 {
		t.Errorf("rejected messages were queued: %+v", st)
	}
}

func TestOutboxPurge(t *testing.T) {
	db, _ := openTest(t, Options{})
	o := db.Outbox()
	enqueue(t, o, "a", event("1"), event("2"))
	enqueue(t, o, "b", event("3"))
	last := peekAll(t, o, "a")[1].Seq

	if n, err := o.Purge("a"); err != nil || n != 2 {
		t.Fatalf("Purge(a) = %d, %v; want 2", n, err)
	}
	if got := peekAll(t, o, "a"); len(got) != 0 {
		t.Errorf("a after purge holds %q", payloads(got))
	}
	enqueue(t, o, "a", event("4"))
	if got := peekAll(t, o, "a"); got[0].Seq <= last {
		t.Errorf("seq after purge = %d, want above %d", got[0].Seq, last)
	}
	if n, err := o.Purge(""); err != nil || n != 2 {
		t.Fatalf("Purge(all) = %d, %v; want 2", n, err)
	}
	if st := o.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Errorf("Stats after purging all = %+v", st)
	}
}

func TestOutboxNotify(t *testing.T) {
	db, _ := openTest(t, Options{})
	o := db.Outbox()
	ch := o.Notify("a")
	if o.Notify("a") != ch {
		t.Fatal("Notify returns a different channel for the same queue")
	}
	enqueue(t, o, "b", event("other queue"))
	select {
	case <-ch:
		t.Fatal("notified for another queue's message")
	default:
	}
	enqueue(t, o, "a", event("1"))
	enqueue(t, o, "a", event("2"))
	select {
	case <-ch:
	default:
		t.Fatal("no notification after Enqueue")
	}
	select {
	case <-ch:
		t.Fatal("two enqueues were not coalesced into one notification")
	default:
	}
}

func TestOutboxClosed(t *testing.T) {
	db, _ := openTest(t, Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Outbox().Enqueue(context.Background(), "a", event("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if err := db.Outbox().Ack("a", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close = %v, want ErrClosed", err)
	}
}

func TestOutboxEnqueueContext(t *testing.T) {
	db, _ := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// With a cancelled context the call must not block; whether the write happened is unknown
	// to the caller, and the outbox stays usable.
	_ = db.Outbox().Enqueue(ctx, "a", event("x"))
	enqueue(t, db.Outbox(), "a", event("y"))
	if got := payloads(peekAll(t, db.Outbox(), "a")); got[len(got)-1] != "y" {
		t.Errorf("queue = %q", got)
	}
}

// Producers, a consumer that peeks and acks, and Stats readers, all at once: run with -race.
// Every message must come out exactly once and in each producer's order.
func TestOutboxConcurrent(t *testing.T) {
	db, _ := openTest(t, Options{})
	o := db.Outbox()
	const producers, perProducer = 8, 150
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				if err := o.Enqueue(ctx, "q", event(fmt.Sprintf("%d/%d", p, i))); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if st := o.Stats(); st.Depth < 0 || st.Bytes < 0 {
				t.Errorf("Stats went negative: %+v", st)
			}
			time.Sleep(time.Millisecond)
		}
	}()

	next := make([]int, producers)
	total := 0
	notify := o.Notify("q")
	for total < producers*perProducer {
		msgs, err := o.Peek("q", 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			select {
			case <-notify:
			case <-ctx.Done():
				t.Fatalf("timed out with %d of %d received", total, producers*perProducer)
			}
			continue
		}
		for _, m := range msgs {
			var p, i int
			if _, err := fmt.Sscanf(string(m.Payload), "%d/%d", &p, &i); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			if i != next[p] {
				t.Fatalf("producer %d: got message %d, want %d", p, i, next[p])
			}
			next[p]++
			total++
		}
		if err := o.Ack("q", seqs(msgs)...); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	if st := o.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Errorf("Stats after draining = %+v", st)
	}
}

func TestOutboxLoweredBoundTrimsAtOpen(t *testing.T) {
	db, path := openTest(t, Options{})
	for i := range 10 {
		enqueue(t, db.Outbox(), "mqtt", msg(ClassEvent, fmt.Sprint("e", i)))
	}
	db.Close()
	db, err := Open(path, Options{OutboxMaxBytes: 4 * unit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := db.Outbox().Stats()
	if st.Depth != 4 || st.Bytes != 4*unit || st.DroppedEvents != 6 {
		t.Errorf("Stats after reopening with a lower bound = %+v, want the 4 newest kept and 6 dropped", st)
	}
	if got := trimSpace(string(peekAll(t, db.Outbox(), "mqtt")[0].Payload)); got != "e6" {
		t.Errorf("head after trim = %q, want e6", got)
	}
}

// Drops are counted exactly but logged at most once per interval, so a flood cannot fill the log.
func TestOutboxDropLogIsRateLimited(t *testing.T) {
	var logs recordCounter
	db, _ := openTest(t, Options{OutboxMaxBytes: 2 * unit, Logger: slog.New(&logs)})
	o := db.Outbox()
	for i := range 50 {
		enqueue(t, o, "mqtt", msg(ClassTelemetry, fmt.Sprint("t", i)))
	}
	if st := o.Stats(); st.DroppedTelemetry != 48 {
		t.Errorf("dropped %d telemetry, want 48", st.DroppedTelemetry)
	}
	if n := logs.n.Load(); n != 1 {
		t.Errorf("%d drop log records for 48 drops within seconds, want 1", n)
	}
}

type recordCounter struct{ n atomic.Int64 }

func (c *recordCounter) Enabled(context.Context, slog.Level) bool  { return true }
func (c *recordCounter) Handle(context.Context, slog.Record) error { c.n.Add(1); return nil }
func (c *recordCounter) WithAttrs([]slog.Attr) slog.Handler        { return c }
func (c *recordCounter) WithGroup(string) slog.Handler             { return c }

func TestOutboxBurstIsOneCommit(t *testing.T) {
	db, _ := openTest(t, Options{})
	o := db.Outbox()
	burst := make([]Message, 500)
	for i := range burst {
		burst[i] = event(fmt.Sprint(i))
	}
	before := o.commits.Load()
	enqueue(t, o, "mqtt", burst...)
	if n := o.commits.Load() - before; n != 1 {
		t.Errorf("one Enqueue of %d messages took %d commits, want 1", len(burst), n)
	}

	// Concurrent producers share commits; how many depends on scheduling, so only log it.
	before = o.commits.Load()
	var wg sync.WaitGroup
	for p := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				enqueue(t, o, "mqtt", event(fmt.Sprint(p, "/", i)))
			}
		}()
	}
	wg.Wait()
	t.Logf("320 concurrent single-message Enqueues took %d commits", o.commits.Load()-before)
}

// A keep-latest message replaces the queued one of the same queue and topic, on disk (it is gone
// after a reopen) and in the queue (Peek no longer returns it); other topics, queues and plain
// messages of the same topic stay.
func TestOutboxKeepLatestReplaces(t *testing.T) {
	db, path := openTest(t, Options{})
	o := db.Outbox()
	latest := func(topic, p string) Message {
		return Message{Class: ClassEvent, Topic: topic, Retain: true, Latest: true, Payload: []byte(p)}
	}
	enqueue(t, o, "mqtt", latest("cameras/porch/snapshot", "jpeg1"), event("started"))
	enqueue(t, o, "mqtt", latest("cameras/yard/snapshot", "yard1"), latest("cameras/porch/snapshot", "jpeg2"))
	enqueue(t, o, "other", latest("cameras/porch/snapshot", "other1"))
	enqueue(t, o, "mqtt", Message{Class: ClassEvent, Topic: "cameras/porch/snapshot", Payload: []byte("plain")})
	enqueue(t, o, "mqtt", latest("cameras/porch/snapshot", "jpeg3"))
	want := []string{"started", "yard1", "plain", "jpeg3"}
	if got := payloads(peekAll(t, o, "mqtt")); !slices.Equal(got, want) {
		t.Fatalf("queue holds %q, want %q", got, want)
	}
	st := o.Stats().Queues["mqtt"]
	if st.Depth != 4 {
		t.Errorf("depth %d, want 4", st.Depth)
	}
	// Acking the newest forgets it: the next one of that topic has nothing to replace.
	msgs := peekAll(t, o, "mqtt")
	if err := o.Ack("mqtt", msgs[3].Seq); err != nil {
		t.Fatal(err)
	}
	enqueue(t, o, "mqtt", latest("cameras/porch/snapshot", "jpeg4"))
	db.Close()

	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	o2 := db2.Outbox()
	want = []string{"started", "yard1", "plain", "jpeg4"}
	if got := payloads(peekAll(t, o2, "mqtt")); !slices.Equal(got, want) {
		t.Fatalf("after reopen the queue holds %q, want %q", got, want)
	}
	// The index is rebuilt at Open: a new snapshot still replaces the stored one.
	enqueue(t, o2, "mqtt", latest("cameras/porch/snapshot", "jpeg5"), latest("cameras/yard/snapshot", "yard2"))
	want = []string{"started", "plain", "jpeg5", "yard2"}
	if got := payloads(peekAll(t, o2, "mqtt")); !slices.Equal(got, want) {
		t.Fatalf("after reopen and replace the queue holds %q, want %q", got, want)
	}
	if got := payloads(peekAll(t, o2, "other")); !slices.Equal(got, []string{"other1"}) {
		t.Errorf("another queue's snapshot was touched: %q", got)
	}
	if st := o2.Stats(); st.Depth != 5 || st.Queues["mqtt"].Depth != 4 {
		t.Errorf("stats after replace: %+v", st)
	}
}
