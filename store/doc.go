// Package store is the only package that opens the bbolt database: cameras, settings, open
// motion episodes and the durable outbox.
//
// It imports nothing of camgate's and interprets no payload: it remembers bytes safely and in
// order, with group commit so that flash is not worn by one fsync per message.
//
// # Layout
//
// One file, <data_dir>/camgate.db, with top-level buckets:
//
//	meta            schema version, persisted drop counters
//	cameras         camera_id -> opaque value (the agent's JSON)
//	settings        key -> opaque value
//	motion_episodes camera_id -> opaque value (the agent's open motion episode)
//	outbox:<queue>  8-byte big-endian seq -> record (class, flags, enqueue time, topic, payload)
//
// and beside it the directory <data_dir>/camgate.db.payloads, one file per queued payload of 16
// KiB or more (alarm JPEGs), whose record holds the file's name, size and CRC-32C instead of the
// payload.
//
// Queues are top-level buckets, not children of one "outbox" bucket, because every level of
// nesting is one more page written per commit. Big-endian seq keys make the head of a queue the
// first key of its bucket, so Peek is a cursor First and Next. Seqs come from the bucket's
// persisted sequence, so they keep increasing across restarts and purges.
//
// # Schema
//
// meta/schema holds the version: 2 since records may refer to payload files (1 had payloads
// inline only; an older camgate refuses a version-2 file rather than skip its snapshots). Open
// migrates an older file one step at a time, each step and the new version in the one
// transaction that also opens the file, so a crash or failure leaves the old version intact; a
// newer file is refused with ErrSchemaTooNew and left untouched.
//
// # Payload files
//
// bbolt rewrites a whole leaf page, with every value stored in it, whenever any key of that
// leaf changes. A big payload stored inline was rewritten by every small commit beside it: with
// four cameras, each alarm mail rewrote the four latest JPEGs (bench/README.md, issue 12). A
// payload file is written once. It is created, fsynced, and its directory fsynced before the
// commit that refers to it, and removed only after the commit that drops its record; Open
// removes files no record refers to (a crash between the two). So a record never refers to a
// missing file, and a crash leaves at most a file to delete. When the caller already keeps the
// payload in a file (Message.PayloadFile: the agent's snapshots/<camera>.jpg), the payload file
// is a hard link to it, checked against the payload: the JPEG is written to flash once.
// Peek reads the files and refuses one whose size or checksum does not match.
//
// # Group commit
//
// Enqueue, Ack and Purge are requests to a single writer goroutine. It takes every request that
// is waiting, applies them all in one bbolt transaction (one fsync) and then answers each. Under
// load a burst of concurrent Enqueues costs one fsync; a lone Enqueue costs no added delay, as
// there is no timer. Enqueue returns only after the commit, so what it returned for survives
// SIGKILL (tested by killing a child process mid-stream).
//
// # Keep-latest
//
// A message enqueued with Latest replaces, in the same commit, the queued Latest message of the
// same queue and topic, on disk and in the queue: retained topics (alarm snapshots, state) whose
// receiver keeps only the newest cost one message, not one per alarm. An index in memory (topic
// to seq, rebuilt at Open) finds the one to replace without a scan.
//
// # Bound
//
// Messages are accounted as payload + topic + a fixed 64-byte overhead. After each commit's
// changes, while the total exceeds OutboxMaxBytes, the oldest telemetry message of any queue is
// dropped, then the oldest event; registrations are never dropped, and registrations alone may
// exceed the bound (logged). Drop counters persist in meta; drops are logged at most every five
// seconds. Accounting lives in memory (rebuilt by a scan at Open), so Stats never reads disk.
//
// # bbolt options, and why
//
//   - NoFreelistSync: the freelist is not written on every commit, one page less per commit
//     (flash wear); the price is a scan of the file at Open, which at 64 MiB is well under a
//     second.
//   - FreelistType hashmap: constant-time page allocation with the churn of a queue.
//   - FillPercent 1.0 on queue buckets: keys only append, so pages can be filled completely.
//   - InitialMmapSize 2 x OutboxMaxBytes (at most 256 MiB): no remap, which would make the writer
//     wait for readers, while the file grows to its working size.
//   - MaxSize 4 x OutboxMaxBytes + 32 MiB (at most 1 GiB): a safety net only. The outbox's own
//     bound plus bbolt's page reuse keep the file under about twice the bound plus a fixed slack
//     over 200,000 messages of churn (TestOutboxFileBoundedUnderChurn).
//   - Timeout 1 s on the file lock: a second camgate fails at once with ErrLocked.
package store
