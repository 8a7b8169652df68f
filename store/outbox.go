package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Each queue is a top-level bucket "outbox:<queue>" rather than a child of one "outbox" bucket:
// a nested bucket would add one more page to every commit, and pages written are flash worn.
const queuePrefix = "outbox:"

const (
	maxQueueNameLen = 200
	// A commit gathers at most this much so one burst cannot build an unbounded transaction.
	maxBatchRequests = 4096
	maxBatchBytes    = 8 << 20
	// Drops and over-bound registrations are logged at most this often; the counters are exact.
	dropLogInterval = 5 * time.Second
)

// QueueStats describes one queue.
type QueueStats struct {
	Depth  int
	Bytes  int64
	Oldest time.Time
}

// OutboxStats describes the whole outbox. Bytes count payload + topic + a fixed per-message
// overhead, the same measure OutboxMaxBytes bounds.
type OutboxStats struct {
	Queues           map[string]QueueStats
	Depth            int
	Bytes            int64
	MaxBytes         int64
	DroppedTelemetry uint64 // since the database was created (persisted)
	DroppedEvents    uint64
}

// Outbox is the durable outbox: one FIFO queue per destination ("mqtt", "sink:0", ...).
//
// All writes (Enqueue, Ack, Purge) go through one goroutine that commits whatever has gathered
// while the previous commit was on disk as one transaction: under load a burst costs one fsync,
// and alone a message costs no extra latency.
type Outbox struct {
	bolt     *bolt.DB
	log      *slog.Logger
	maxBytes int64
	files    *payloadDir        // payloads of filePayloadMin bytes or more
	crashAt  func(point string) // tests only (tuning.crashAt)

	reqs      chan *request // unbuffered: a send succeeds only while the writer runs
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once

	// Owned by the writer goroutine.
	state           *outboxState
	lastDropLog     time.Time
	unloggedDrops   [ClassRegistration + 1]uint64
	lastOverflowLog time.Time
	// Payload files whose records the commit in progress removes: deleted once it is on disk.
	unreferenced []string

	commits atomic.Uint64 // successful transactions; benchmarks count fsyncs with it

	mu     sync.Mutex
	stats  OutboxStats // published after every commit; Queues is never mutated once published
	notify map[string]chan struct{}
}

// outboxState is the in-memory accounting, rebuilt from disk at Open so Stats never reads disk.
type outboxState struct {
	queues  map[string]*queueState
	count   [ClassRegistration + 1]int
	bytes   int64
	dropped [ClassRegistration + 1]uint64 // persisted in meta
}

type queueState struct {
	depth  int
	bytes  int64
	oldest time.Time
	count  [ClassRegistration + 1]int
	// hint[c]: no message of class c has a lower seq, so the search for the oldest telemetry or
	// event to drop skips each other message once, not on every drop.
	hint [ClassRegistration + 1]uint64
	// latest maps the topic of each queued keep-latest message to its seq.
	latest map[string]uint64
}

func (s *outboxState) queue(name string) *queueState {
	q := s.queues[name]
	if q == nil {
		q = &queueState{}
		s.queues[name] = q
	}
	return q
}

func (s *outboxState) add(q *queueState, c Class, size int64) {
	q.depth++
	q.bytes += size
	q.count[c]++
	s.count[c]++
	s.bytes += size
}

func (s *outboxState) remove(q *queueState, c Class, size int64) {
	q.depth--
	q.bytes -= size
	q.count[c]--
	s.count[c]--
	s.bytes -= size
}

type opKind uint8

const (
	opEnqueue opKind = iota
	opAck
	opPurge
)

type request struct {
	kind   opKind
	queue  string
	recs   []pendingRecord
	seqs   []uint64
	bytes  int64
	purged int
	done   chan error // buffered: the writer never waits for a caller that gave up
}

// pendingRecord is a message encoded by its producer's goroutine, so the single writer only
// assigns keys, and so the caller's payload is not referenced once Enqueue returns.
type pendingRecord struct {
	class  Class
	size   int64
	rec    []byte
	latest bool
	topic  string
	file   string // the payload file this record refers to, if any
}

func queueBucket(queue string) []byte { return []byte(queuePrefix + queue) }

// recordInfo is what accounting needs from a record. A record that does not parse (never written
// by this code) is accounted as an event so that it can still be dropped and acked; the error
// says why it did not parse.
func recordInfo(rec []byte) (Class, int64, time.Time, error) {
	m, err := decodeRecord(0, rec)
	if err != nil {
		return ClassEvent, int64(len(rec)) + messageOverhead, time.Time{}, err
	}
	return m.Class, m.size(), m.Enqueued, nil
}

// loadOutbox rebuilds the accounting from disk. If refs is not nil, it receives the name of
// every payload file a record refers to.
func loadOutbox(tx *bolt.Tx, log *slog.Logger, refs map[string]bool) (*outboxState, error) {
	s := &outboxState{queues: make(map[string]*queueState)}
	if meta := tx.Bucket(bucketMeta); meta != nil {
		s.dropped[ClassTelemetry] = getCounter(meta, keyDroppedTelemetry)
		s.dropped[ClassEvent] = getCounter(meta, keyDroppedEvents)
	}
	prefix := []byte(queuePrefix)
	c := tx.Cursor()
	for name, _ := c.Seek(prefix); name != nil && bytes.HasPrefix(name, prefix); name, _ = c.Next() {
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		q := s.queue(string(name[len(prefix):]))
		first := true
		err := b.ForEach(func(k, v []byte) error {
			class, size, t, err := recordInfo(v)
			if err != nil || len(k) != 8 {
				log.Warn("store: outbox record does not parse; accounted as an event",
					"queue", string(name[len(prefix):]), "key", fmt.Sprintf("%x", k), "error", err)
			}
			s.add(q, class, size)
			if m, err := decodeRecord(0, v); err == nil {
				if m.Latest && len(k) == 8 {
					q.setLatest(m.Topic, binary.BigEndian.Uint64(k)) // a later seq wins: ForEach goes in order
				}
				if refs != nil && m.file.name != "" {
					refs[m.file.name] = true
				}
			}
			if first {
				q.oldest, first = t, false
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scan queue %s: %w", name, err)
		}
	}
	return s, nil
}

func getCounter(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putCounter(b *bolt.Bucket, key []byte, n uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], n)
	return b.Put(key, buf[:])
}

func newOutbox(bdb *bolt.DB, maxBytes int64, log *slog.Logger, st *outboxState, files *payloadDir) *Outbox {
	o := &Outbox{
		bolt:     bdb,
		log:      log,
		maxBytes: maxBytes,
		files:    files,
		reqs:     make(chan *request),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		state:    st,
		notify:   make(map[string]chan struct{}),
	}
	if st.bytes > maxBytes {
		// OutboxMaxBytes was lowered since the last run: trim now, not at the next Enqueue.
		o.commit(nil)
	}
	o.publish()
	go o.run()
	return o
}

func (o *Outbox) close() {
	o.closeOnce.Do(func() {
		close(o.stop)
		<-o.stopped
	})
}

// Enqueue appends msgs to queue and returns only once they are durable on disk (fsynced).
// Concurrent callers are group-committed: a burst is one fsync, not one per message.
// Seq and Enqueued of msgs are assigned by the outbox; the caller's slice is not modified, and
// its payloads are copied before Enqueue returns, whatever it returns.
// If the outbox is over its bound, the oldest telemetry and then the oldest events (possibly
// those just enqueued) are dropped and counted; that is not an error.
// An error from ctx means the messages may or may not have been stored.
func (o *Outbox) Enqueue(ctx context.Context, queue string, msgs ...Message) error {
	if err := validQueue(queue); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	r := &request{kind: opEnqueue, queue: queue, recs: make([]pendingRecord, len(msgs))}
	now := time.Now()
	for i, m := range msgs {
		if !m.Class.valid() {
			return fmt.Errorf("store: enqueue to %q: message %d: invalid class %d", queue, i, m.Class)
		}
		if len(m.Topic) > maxTopicLen {
			return fmt.Errorf("store: enqueue to %q: message %d: topic of %d bytes", queue, i, len(m.Topic))
		}
		if m.size() > o.maxBytes {
			return fmt.Errorf("store: enqueue to %q: message %d: %d bytes can never fit the outbox bound of %d",
				queue, i, m.size(), o.maxBytes)
		}
	}
	for i, m := range msgs {
		m.Enqueued = now
		m.file = payloadRef{}
		if len(m.Payload) >= filePayloadMin {
			// Written and fsynced before the commit that refers to it, by the caller's goroutine
			// so that the single writer only commits.
			ref, err := o.files.adopt(m.PayloadFile, m.Payload)
			if err != nil {
				o.files.remove(r.files()...)
				return fmt.Errorf("store: enqueue to %q: message %d: %w", queue, i, err)
			}
			m.file = ref
			o.crashPoint("payload written")
		}
		r.recs[i] = pendingRecord{class: m.Class, size: m.size(), rec: encodeRecord(&m), latest: m.Latest, topic: m.Topic,
			file: m.file.name}
		r.bytes += m.size()
	}
	sent, err := o.send(ctx, r)
	if !sent {
		o.files.remove(r.files()...) // no commit can refer to them
	}
	return err
}

func (o *Outbox) crashPoint(point string) {
	if o.crashAt != nil {
		o.crashAt(point)
	}
}

// files lists the payload files an enqueue request's records refer to.
func (r *request) files() []string {
	var names []string
	for _, p := range r.recs {
		if p.file != "" {
			names = append(names, p.file)
		}
	}
	return names
}

// Peek returns up to max of the oldest messages of queue, oldest first, without removing them.
func (o *Outbox) Peek(queue string, max int) ([]Message, error) {
	if max <= 0 {
		return nil, nil
	}
	var out []Message
	var inFiles bool
	err := o.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(queueBucket(queue))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			m, err := decodeRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				o.log.Warn("store: skipping outbox record that does not parse",
					"queue", queue, "seq", binary.BigEndian.Uint64(k), "error", err)
				continue
			}
			m.Payload = bytes.Clone(m.Payload)
			inFiles = inFiles || m.file.name != ""
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: peek %q: %w", queue, err)
	}
	if inFiles {
		out = o.readPayloads(queue, out)
	}
	return out, nil
}

// readPayloads reads the payloads kept in files, outside the transaction: a message whose file
// is gone because a commit since removed the message (acked, replaced by a newer one, dropped)
// is left out, as it would be from a later Peek.
func (o *Outbox) readPayloads(queue string, msgs []Message) []Message {
	out := msgs[:0]
	for _, m := range msgs {
		if m.file.name == "" {
			out = append(out, m)
			continue
		}
		if m.file.size > o.maxBytes {
			o.log.Warn("store: skipping outbox record whose payload file is larger than the outbox bound",
				"queue", queue, "seq", m.Seq, "bytes", m.file.size)
			continue
		}
		b, err := o.files.read(m.file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && !o.queued(queue, m.Seq) {
				continue
			}
			o.log.Warn("store: skipping outbox record whose payload file cannot be read",
				"queue", queue, "seq", m.Seq, "error", err)
			continue
		}
		m.Payload, m.file = b, payloadRef{}
		out = append(out, m)
	}
	return out
}

// queued says whether seq is still in queue.
func (o *Outbox) queued(queue string, seq uint64) bool {
	found := false
	_ = o.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(queueBucket(queue)); b != nil {
			found = b.Get(seqKey(seq)) != nil
		}
		return nil
	})
	return found
}

// Ack removes delivered messages (unknown seqs are ignored).
func (o *Outbox) Ack(queue string, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return o.do(context.Background(), &request{kind: opAck, queue: queue, seqs: seqs, bytes: int64(8 * len(seqs))})
}

// Purge removes every message of queue ("" = every queue) and returns how many it removed.
// Sequence numbers keep increasing after a purge.
func (o *Outbox) Purge(queue string) (int, error) {
	r := &request{kind: opPurge, queue: queue}
	if err := o.do(context.Background(), r); err != nil {
		return 0, err
	}
	return r.purged, nil
}

// Notify returns a channel that receives a value (non-blocking, coalesced, buffer 1) whenever
// something is enqueued to queue. Drain loops: Peek; if empty, wait on Notify or ctx.
func (o *Outbox) Notify(queue string) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch := o.notify[queue]
	if ch == nil {
		ch = make(chan struct{}, 1)
		o.notify[queue] = ch
	}
	return ch
}

// Stats returns the outbox's accounting from memory, without touching disk.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	s := o.stats
	o.mu.Unlock()
	s.Queues = maps.Clone(s.Queues)
	return s
}

func validQueue(queue string) error {
	if queue == "" || len(queue) > maxQueueNameLen {
		return fmt.Errorf("store: invalid queue name %q: want 1 to %d bytes", queue, maxQueueNameLen)
	}
	return nil
}

func (o *Outbox) do(ctx context.Context, r *request) error {
	_, err := o.send(ctx, r)
	return err
}

// send hands r to the writer and waits for its answer. sent says whether the writer took it:
// from then on the writer owns the payload files of its records.
func (o *Outbox) send(ctx context.Context, r *request) (sent bool, err error) {
	r.done = make(chan error, 1)
	select {
	case o.reqs <- r:
	case <-o.stop:
		return false, ErrClosed
	case <-ctx.Done():
		return false, fmt.Errorf("store: %w", ctx.Err())
	}
	select {
	case err := <-r.done:
		return true, err
	case <-ctx.Done():
		return true, fmt.Errorf("store: %w (the write may still complete)", ctx.Err())
	}
}

// run is the single writer. It takes whatever requests are waiting, commits them together, and
// repeats; it returns once stop is closed and no commit is in progress.
func (o *Outbox) run() {
	defer close(o.stopped)
	batch := make([]*request, 0, 64)
	for {
		batch = batch[:0]
		select {
		case r := <-o.reqs:
			batch = append(batch, r)
		case <-o.stop:
			return
		}
		size := batch[0].bytes
		// Producers woken by the previous commit are runnable but may not have reached their
		// send yet: let them, so they join this commit instead of costing one more fsync.
		runtime.Gosched()
	gather:
		for len(batch) < maxBatchRequests && size < maxBatchBytes {
			select {
			case r := <-o.reqs:
				batch = append(batch, r)
				size += r.bytes
			default:
				break gather
			}
		}
		o.commit(batch)
		clear(batch) // let payloads be collected while the writer idles
	}
}

func (o *Outbox) commit(batch []*request) {
	var dropped [ClassRegistration + 1]uint64
	err := o.bolt.Update(func(tx *bolt.Tx) error {
		touched := make(map[string]*queueState)
		for _, r := range batch {
			var err error
			switch r.kind {
			case opEnqueue:
				err = o.applyEnqueue(tx, r, touched)
			case opAck:
				err = o.applyAck(tx, r, touched)
			case opPurge:
				err = o.applyPurge(tx, r, touched)
			}
			if err != nil {
				return err
			}
		}
		var err error
		if dropped, err = o.enforceBound(tx, touched); err != nil {
			return err
		}
		if dropped[ClassTelemetry]+dropped[ClassEvent] > 0 {
			meta := tx.Bucket(bucketMeta)
			telemetry := o.state.dropped[ClassTelemetry] + dropped[ClassTelemetry]
			if err := putCounter(meta, keyDroppedTelemetry, telemetry); err != nil {
				return err
			}
			events := o.state.dropped[ClassEvent] + dropped[ClassEvent]
			if err := putCounter(meta, keyDroppedEvents, events); err != nil {
				return err
			}
		}
		for name, q := range touched {
			q.oldest = time.Time{}
			if b := tx.Bucket(queueBucket(name)); b != nil {
				if k, v := b.Cursor().First(); k != nil {
					_, _, q.oldest, _ = recordInfo(v)
				}
			}
		}
		return nil
	})
	if err == nil {
		o.crashPoint("committed")
		o.files.remove(o.unreferenced...)
	} else {
		// The records are as they were: their files stay, and the new ones are nobody's.
		for _, r := range batch {
			o.files.remove(r.files()...)
		}
	}
	clear(o.unreferenced)
	o.unreferenced = o.unreferenced[:0]
	if err != nil {
		err = fmt.Errorf("store: outbox commit: %w", err)
		o.log.Error("store: outbox commit failed", "requests", len(batch), "error", err)
		// The accounting was changed alongside a transaction that rolled back: rebuild it.
		if rerr := o.bolt.View(func(tx *bolt.Tx) error {
			st, err := loadOutbox(tx, o.log, nil)
			if err == nil {
				o.state = st
			}
			return err
		}); rerr != nil {
			o.log.Error("store: outbox accounting rebuild failed", "error", rerr)
		}
	} else {
		o.commits.Add(1)
		o.state.dropped[ClassTelemetry] += dropped[ClassTelemetry]
		o.state.dropped[ClassEvent] += dropped[ClassEvent]
		o.logDrops(dropped)
	}
	o.publish()
	if err == nil {
		o.signal(batch)
	}
	for _, r := range batch {
		r.done <- err
	}
}

func (o *Outbox) applyEnqueue(tx *bolt.Tx, r *request, touched map[string]*queueState) error {
	b, err := tx.CreateBucketIfNotExists(queueBucket(r.queue))
	if err != nil {
		return fmt.Errorf("queue %q: %w", r.queue, err)
	}
	// Keys only ever append, so full pages are never split again: fill them completely.
	b.FillPercent = 1.0
	q := o.state.queue(r.queue)
	touched[r.queue] = q
	for _, p := range r.recs {
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("queue %q: %w", r.queue, err)
		}
		if p.latest {
			if err := o.replaceLatest(b, q, p.topic); err != nil {
				return fmt.Errorf("queue %q: %w", r.queue, err)
			}
			q.setLatest(p.topic, seq)
		}
		if err := b.Put(seqKey(seq), p.rec); err != nil {
			return fmt.Errorf("queue %q: put: %w", r.queue, err)
		}
		o.state.add(q, p.class, p.size)
	}
	return nil
}

func (q *queueState) setLatest(topic string, seq uint64) {
	if q.latest == nil {
		q.latest = make(map[string]uint64)
	}
	q.latest[topic] = seq
}

// replaceLatest deletes the queued keep-latest message of topic, if any: only the newest of a
// retained topic matters, so an older one is neither written twice nor sent.
func (o *Outbox) replaceLatest(b *bolt.Bucket, q *queueState, topic string) error {
	seq, ok := q.latest[topic]
	if !ok {
		return nil
	}
	delete(q.latest, topic)
	k := seqKey(seq)
	v := b.Get(k)
	if v == nil {
		return nil
	}
	class, size, _, _ := recordInfo(v)
	o.forgetFile(v)
	if err := b.Delete(k); err != nil {
		return fmt.Errorf("replacing %d: %w", seq, err)
	}
	o.state.remove(q, class, size)
	return nil
}

// forgetFile notes the payload file of a record about to be deleted, to delete once the commit
// is on disk.
func (o *Outbox) forgetFile(v []byte) {
	if len(v) > 2 && v[2]&flagFile != 0 {
		if m, err := decodeRecord(0, v); err == nil {
			o.unreferenced = append(o.unreferenced, m.file.name)
		}
	}
}

// forgetLatest drops the index entry of a keep-latest record about to be deleted.
func (q *queueState) forgetLatest(k, v []byte) {
	if len(q.latest) == 0 {
		return
	}
	if m, err := decodeRecord(0, v); err == nil && m.Latest && q.latest[m.Topic] == binary.BigEndian.Uint64(k) {
		delete(q.latest, m.Topic)
	}
}

func (o *Outbox) applyAck(tx *bolt.Tx, r *request, touched map[string]*queueState) error {
	b := tx.Bucket(queueBucket(r.queue))
	if b == nil {
		return nil
	}
	q := o.state.queue(r.queue)
	touched[r.queue] = q
	for _, seq := range r.seqs {
		k := seqKey(seq)
		v := b.Get(k)
		if v == nil {
			continue
		}
		class, size, _, _ := recordInfo(v)
		q.forgetLatest(k, v)
		o.forgetFile(v)
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("queue %q: ack %d: %w", r.queue, seq, err)
		}
		o.state.remove(q, class, size)
	}
	return nil
}

func (o *Outbox) applyPurge(tx *bolt.Tx, r *request, touched map[string]*queueState) error {
	names := []string{r.queue}
	if r.queue == "" {
		names = names[:0]
		for name := range o.state.queues {
			names = append(names, name)
		}
	}
	for _, name := range names {
		b := tx.Bucket(queueBucket(name))
		if b == nil {
			continue
		}
		// Recreating the bucket frees its pages at once; the sequence carries over so that a
		// consumer never sees a seq it has seen before.
		seq := b.Sequence()
		if err := b.ForEach(func(_, v []byte) error { o.forgetFile(v); return nil }); err != nil {
			return fmt.Errorf("purge %q: %w", name, err)
		}
		if err := tx.DeleteBucket(queueBucket(name)); err != nil {
			return fmt.Errorf("purge %q: %w", name, err)
		}
		nb, err := tx.CreateBucket(queueBucket(name))
		if err != nil {
			return fmt.Errorf("purge %q: %w", name, err)
		}
		if err := nb.SetSequence(seq); err != nil {
			return fmt.Errorf("purge %q: %w", name, err)
		}
		q := o.state.queue(name)
		r.purged += q.depth
		for c := range q.count {
			o.state.count[c] -= q.count[c]
		}
		o.state.bytes -= q.bytes
		*q = queueState{}
		touched[name] = q
	}
	return nil
}

// enforceBound drops the oldest telemetry, then the oldest events, until the outbox fits its
// bound; registrations alone may exceed it.
func (o *Outbox) enforceBound(tx *bolt.Tx, touched map[string]*queueState) ([ClassRegistration + 1]uint64, error) {
	var dropped [ClassRegistration + 1]uint64
	for o.state.bytes > o.maxBytes {
		class := ClassTelemetry
		if o.state.count[class] == 0 {
			class = ClassEvent
		}
		if o.state.count[class] == 0 {
			if time.Since(o.lastOverflowLog) >= dropLogInterval {
				o.lastOverflowLog = time.Now()
				o.log.Warn("store: outbox over its bound with registrations only; keeping them",
					"bytes", o.state.bytes, "max_bytes", o.maxBytes)
			}
			break
		}
		var (
			victimQueue string
			victimKey   []byte
			victimTime  time.Time
			victimSize  int64
		)
		for name, q := range o.state.queues {
			if q.count[class] == 0 {
				continue
			}
			c := tx.Bucket(queueBucket(name)).Cursor()
			found := false
			for k, v := c.Seek(seqKey(q.hint[class])); k != nil; k, v = c.Next() {
				cl, size, t, _ := recordInfo(v)
				if cl != class {
					continue
				}
				q.hint[class] = binary.BigEndian.Uint64(k)
				if victimKey == nil || t.Before(victimTime) {
					victimQueue, victimKey, victimTime, victimSize = name, bytes.Clone(k), t, size
				}
				found = true
				break
			}
			if !found {
				return dropped, fmt.Errorf("outbox accounting: queue %q counts %d %s messages but holds none",
					name, q.count[class], class)
			}
		}
		vb := tx.Bucket(queueBucket(victimQueue))
		q := o.state.queues[victimQueue]
		victim := vb.Get(victimKey)
		q.forgetLatest(victimKey, victim)
		o.forgetFile(victim)
		if err := vb.Delete(victimKey); err != nil {
			return dropped, fmt.Errorf("drop from %q: %w", victimQueue, err)
		}
		o.state.remove(q, class, victimSize)
		touched[victimQueue] = q
		dropped[class]++
	}
	return dropped, nil
}

func (o *Outbox) logDrops(dropped [ClassRegistration + 1]uint64) {
	for c, n := range dropped {
		o.unloggedDrops[c] += n
	}
	if o.unloggedDrops[ClassTelemetry]+o.unloggedDrops[ClassEvent] == 0 || time.Since(o.lastDropLog) < dropLogInterval {
		return
	}
	o.log.Warn("store: outbox full, dropped oldest messages",
		"telemetry", o.unloggedDrops[ClassTelemetry], "events", o.unloggedDrops[ClassEvent],
		"dropped_telemetry_total", o.state.dropped[ClassTelemetry], "dropped_events_total", o.state.dropped[ClassEvent],
		"max_bytes", o.maxBytes)
	o.lastDropLog = time.Now()
	o.unloggedDrops = [ClassRegistration + 1]uint64{}
}

func (o *Outbox) publish() {
	s := OutboxStats{
		Queues:           make(map[string]QueueStats, len(o.state.queues)),
		Bytes:            o.state.bytes,
		MaxBytes:         o.maxBytes,
		DroppedTelemetry: o.state.dropped[ClassTelemetry],
		DroppedEvents:    o.state.dropped[ClassEvent],
	}
	for name, q := range o.state.queues {
		s.Queues[name] = QueueStats{Depth: q.depth, Bytes: q.bytes, Oldest: q.oldest}
		s.Depth += q.depth
	}
	o.mu.Lock()
	o.stats = s
	o.mu.Unlock()
}

func (o *Outbox) signal(batch []*request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range batch {
		if r.kind != opEnqueue {
			continue
		}
		select {
		case o.notify[r.queue] <- struct{}{}:
		default:
		}
	}
}
