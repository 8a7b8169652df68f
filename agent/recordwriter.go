package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/camgate/camgate/store"
)

// The agent's records (added cameras, agent ids, discovered devices, the page's connection
// settings, the registered-camera list) and the registrations the loop queues for MQTT are
// written by one goroutine of their own, the recordWriter, never by the registry loop: each
// write is a bbolt transaction with an fsync, tens of milliseconds on a router's flash and
// seconds on a failing one, and the page, MQTT, motion and discovery must not wait behind it.
//
// The loop encodes what to write while it serves a request (the bytes are the loop's copy,
// never touched again), and after serving hands the writer the request's writes together with
// its reply. The writer does the writes in the order they were handed over and sends the reply
// once they are durable, so an "ok" always means "on disk". Pending writes of one key that
// nobody is told about (agent ids, discovered devices) are coalesced: a newer one makes an
// older one that has not started yet unnecessary, which bounds the queue when the disk is slow.
//
// A write that hangs holds up the writes and replies behind it, never the loop.
//
// A failed write of a record the owner changed (a camera record, the connection settings) is
// logged once and the loop is told: it takes the record back as the disk holds it (read back
// after the failure) and then sends the reply, which says what could not be saved. A newer
// write of that record handed over before the failure was known carries the refused change
// too: then the loop keeps it, and that write's outcome and reply decide. So memory follows the
// disk, and what a restart finds is what the replies said. (A record that cannot even be read
// back, as when the store is closed under it, stays as asked, and an error log says so.)
// Rolling forward instead (keep the change in memory, retry with the next write) would let a
// change the owner was told had failed become durable later with any unrelated change of the
// same record, silently.

// recordWrite is one store write: a Put or Delete of one record, an outbox enqueue or purge.
type recordWrite struct {
	key   string       // "cameras/<id>" or "settings/<name>"; "" for an enqueue, never coalesced
	table *store.Table // with name, value and remove; nil for an enqueue
	name  string
	value []byte
	// remove deletes the record instead of putting value.
	remove bool
	queue  string // outbox queue of msgs, for an enqueue
	msgs   []store.Message
	purge  bool   // empty queue instead of adding msgs
	what   string // for the log and the reply: "saving camera"
	// undo marks a record the owner changed: its failure goes into the reply and the loop takes
	// the record back from the disk (recordReverted). It is never coalesced away.
	undo bool
	seq  uint64      // the loop's count of writes of key when this one was made, for undo
	then func(error) // runs on the writer once the write is done or has failed; may be nil
}

// errChangeNotSaved is what an enqueue skipped after its batch's change failed to save sees.
var errChangeNotSaved = errors.New("the change it describes was not saved")

// writeBatch is what one request made the loop write, with the request's reply.
type writeBatch struct {
	writes []recordWrite
	reply  chan<- result // nil: nobody waits
	res    result
}

// recordWriter owns the agent's store writes. Its queue goroutine takes batches from the loop
// at once (so the loop never waits) and hands them, in order, to its work goroutine, which
// alone touches the store.
type recordWriter struct {
	a    *Agent
	in   chan *writeBatch // from the loop; closed by stop once the loop has returned
	work chan *writeBatch
	done chan struct{} // closed when every batch handed over is written
	gone chan struct{} // closed when stop returns: no reply is coming any more
	// hook, when set (by tests, before Run), runs before each write with its key ("outbox/"
	// and the queue for an enqueue) and fails it with its error: the seam for a slow or failing disk.
	hook func(key string) error
}

func newRecordWriter(a *Agent) *recordWriter {
	return &recordWriter{a: a, in: make(chan *writeBatch), work: make(chan *writeBatch),
		done: make(chan struct{}), gone: make(chan struct{})}
}

// start runs the writer's goroutines; Run calls it once the store is open. ctx must not end
// at shutdown: what was accepted is written (stop bounds the wait).
func (w *recordWriter) start(ctx context.Context) {
	go w.queue()
	go w.write(ctx)
}

// submit hands the writer a batch. Only the loop calls it, and it never waits for a write.
func (w *recordWriter) submit(b *writeBatch) { w.in <- b }

// stop waits, for at most within, until everything handed over is written. The loop has
// returned, so nothing more is handed over.
func (w *recordWriter) stop(within time.Duration) {
	defer close(w.gone)
	close(w.in)
	select {
	case <-w.done:
	case <-time.After(within):
		w.a.log.Error("store: pending record writes did not finish in time; they may be lost", "within", within)
	}
}

// queue holds what the loop handed over until the work goroutine takes it. It never blocks
// the loop: it is always ready to receive.
func (w *recordWriter) queue() {
	defer close(w.work)
	in := w.in
	var pending []*writeBatch
	for in != nil || len(pending) > 0 {
		var work chan *writeBatch
		var head *writeBatch
		if len(pending) > 0 {
			work, head = w.work, pending[0]
		}
		select {
		case b, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			pending = append(coalesce(pending, b), b)
		case work <- head:
			pending[0] = nil
			pending = pending[1:]
		}
	}
}

// coalesce drops from the pending batches the writes b makes unnecessary: older writes of the
// same record that nobody is told about. A batch left without writes still sends its reply in
// its turn; one left with nothing to do goes.
func coalesce(pending []*writeBatch, b *writeBatch) []*writeBatch {
	for _, nw := range b.writes {
		if nw.key == "" {
			continue
		}
		for _, old := range pending {
			old.writes = slices.DeleteFunc(old.writes, func(w recordWrite) bool {
				return w.key == nw.key && !w.undo && w.then == nil
			})
		}
	}
	return slices.DeleteFunc(pending, func(old *writeBatch) bool { return len(old.writes) == 0 && old.reply == nil })
}

// write does each batch's writes in order and then sends its reply.
func (w *recordWriter) write(ctx context.Context) {
	defer close(w.done)
	for b := range w.work {
		var failed []recordWrite
		for _, rw := range b.writes {
			var err error
			if len(failed) > 0 && rw.table == nil && !rw.purge {
				// The registrations queued after a refused change describe it: SC must not see
				// what the owner was told failed. The loop queues the state the disk holds.
				err = errChangeNotSaved
			} else if err = w.do(ctx, rw); err != nil {
				w.a.log.Error("store: "+rw.what+" failed", "key", rw.key, "err", err)
			}
			if rw.then != nil {
				rw.then(err)
			}
			if err != nil && rw.undo {
				if b.res.err == nil {
					b.res.err = fmt.Errorf("%s: %w", rw.what, err)
				}
				failed = append(failed, rw)
			}
		}
		if len(failed) > 0 {
			w.revert(failed, b)
			continue
		}
		if b.reply != nil {
			b.reply <- b.res
		}
	}
}

func (w *recordWriter) do(ctx context.Context, rw recordWrite) error {
	if w.hook != nil {
		key := rw.key
		if rw.table == nil {
			key = "outbox/" + rw.queue
		}
		if err := w.hook(key); err != nil {
			return err
		}
	}
	switch {
	case rw.purge:
		n, err := w.a.db.Outbox().Purge(rw.queue) //nolint:contextcheck // Purge takes none: never half-way
		if err == nil {
			w.a.log.Warn("dropped the backlog of an event sink no longer configured", "queue", rw.queue, "events", n)
		}
		return err
	case rw.table == nil:
		return w.a.enqueue(ctx, rw.queue, rw.msgs...)
	case rw.remove:
		return rw.table.Delete(rw.name)
	default:
		return rw.table.Put(rw.name, rw.value)
	}
}

// revert reads the failed records back as the disk holds them and hands them to the loop,
// which sends the batch's reply once it has taken them: a request after the reply sees the
// record as it is on disk. When the loop has already returned, the reply is sent from here.
func (w *recordWriter) revert(failed []recordWrite, b *writeBatch) {
	q := recordReverted{res: b.res}
	for _, rw := range failed {
		v, ok, err := rw.table.Get(rw.name)
		q.records = append(q.records, revertedRecord{write: rw, value: v, found: ok, err: err})
	}
	select {
	case w.a.requests <- envelope{req: q, done: b.reply}:
	case <-w.a.loopDone:
		if b.reply != nil {
			b.reply <- b.res
		}
	}
}

// revertedRecord is one record whose write failed, as read back from the disk.
type revertedRecord struct {
	write recordWrite
	value []byte
	found bool
	err   error // the read failed too: the disk's value is unknown
}

// recordReverted tells the loop which records' writes failed and what the disk holds for
// them. Its answer is the failed request's reply.
type recordReverted struct {
	records []revertedRecord
	res     result
}

func (q recordReverted) serve(r *registry) result {
	for _, rec := range q.records {
		rw := rec.write
		switch {
		case r.writeSeq[rw.key] != rw.seq:
			continue // a newer write of the record is on its way: its outcome decides
		case rec.err != nil:
			r.a.log.Error("store: a record whose write failed cannot be read back: kept as asked until the next write",
				"key", rw.key, "err", rec.err)
			continue
		}
		switch {
		case rw.table == r.a.db.Cameras():
			r.revertCamera(rw.name, rec.value, rec.found)
		case rw.key == "settings/"+settingConnection:
			r.revertConnection(rec.value, rec.found)
		}
	}
	r.reconcile()
	return q.res
}

// revertCamera takes an added camera's record back as the disk holds it.
func (r *registry) revertCamera(id string, b []byte, found bool) {
	if !found {
		delete(r.added, id)
		r.a.log.Info("store: camera not saved: it stays out, as on disk", "camera_id", id)
		return
	}
	var rec cameraRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		r.a.log.Error("store: camera record on disk does not parse: dropped, as a restart would", "camera_id", id,
			"err", err)
		delete(r.added, id)
		return
	}
	rec.ID = id
	r.added[id] = rec
	r.a.log.Info("store: camera change not saved: back to the record on disk", "camera_id", id)
}

// revertConnection takes the page's connection settings back as the disk holds them, over the
// config file as last read.
func (r *registry) revertConnection(b []byte, found bool) {
	var cs connectionSettings
	if found {
		if err := json.Unmarshal(b, &cs); err != nil {
			r.a.log.Error("store: connection settings on disk do not parse; using the file's", "err", err)
			cs = connectionSettings{}
		}
	}
	l := r.file
	cs.overlay(&l.Config)
	old := r.loaded
	r.conn, r.loaded = cs, l
	r.a.log.Info("store: connection settings not saved: back to those on disk")
	if uplinkChanged(old, l) {
		r.restartUplink()
	}
}

// write records one store write to hand the writer once the request in hand is served.
func (r *registry) write(rw recordWrite) {
	if rw.key != "" {
		r.writeSeq[rw.key]++
		rw.seq = r.writeSeq[rw.key]
	}
	r.writes = append(r.writes, rw)
}

// handOver gives the writer what the request just served wrote, with its reply; with nothing
// to write, the loop replies at once.
func (r *registry) handOver(reply chan<- result, res result) {
	if len(r.writes) == 0 {
		if reply != nil {
			reply <- res
		}
		return
	}
	r.a.writer.submit(&writeBatch{writes: r.writes, reply: reply, res: res})
	r.writes = nil
}

// putSetting writes one settings record, encoded here on the loop.
func (r *registry) putSetting(name, what string, v any, undo bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	r.write(recordWrite{key: "settings/" + name, table: r.a.db.Settings(), name: name, value: b, what: what,
		undo: undo})
	return nil
}

// putCamera writes an added camera's record.
func (r *registry) putCamera(rec cameraRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding camera %s: %w", rec.ID, err)
	}
	r.write(recordWrite{key: "cameras/" + rec.ID, table: r.a.db.Cameras(), name: rec.ID, value: b,
		what: "saving camera", undo: true})
	return nil
}

// deleteCamera removes an added camera's record.
func (r *registry) deleteCamera(id string) {
	r.write(recordWrite{key: "cameras/" + id, table: r.a.db.Cameras(), name: id, remove: true,
		what: "removing camera", undo: true})
}
