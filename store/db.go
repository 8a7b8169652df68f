package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this build of camgate writes. A database with a higher version was
// written by a newer camgate and is refused rather than misread.
const SchemaVersion = 2

// DefaultOutboxMaxBytes is the outbox bound when Options.OutboxMaxBytes is 0 (SPEC outbox.max_bytes).
const DefaultOutboxMaxBytes = 64 << 20

// ErrSchemaTooNew is returned by Open for a database written by a newer camgate.
var ErrSchemaTooNew = errors.New("database schema is newer than this camgate supports")

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("database is locked by another process")

// ErrClosed is returned by the outbox once the DB is closed.
var ErrClosed = errors.New("store is closed")

// lockTimeout bounds the wait for another process's lock: a second camgate (or `camgate outbox`
// while the daemon runs) must fail fast with a clear message, not hang.
const lockTimeout = time.Second

var (
	bucketMeta     = []byte("meta")
	bucketCameras  = []byte("cameras")
	bucketSettings = []byte("settings")
	bucketEpisodes = []byte("motion_episodes")

	keySchema           = []byte("schema")
	keyDroppedTelemetry = []byte("dropped_telemetry")
	keyDroppedEvents    = []byte("dropped_events")
)

// Options configure Open.
type Options struct {
	OutboxMaxBytes int64 // bound on the outbox (SPEC outbox.max_bytes); 0 = 64 MiB
	Logger         *slog.Logger
}

// DB is camgate's database in data_dir: the cameras and settings tables and the durable outbox.
// It is safe for concurrent use. Open starts the outbox's commit goroutine; Close stops it.
type DB struct {
	bolt     *bolt.DB
	log      *slog.Logger
	cameras  *Table
	settings *Table
	episodes *Table
	outbox   *Outbox
}

// tuning holds what tests and benchmarks vary; production always uses defaultTuning.
type tuning struct {
	noSync     bool        // tests that measure layout, not durability, skip fsync to stay fast
	migrations []migration // schema steps; tests add a fictitious later version
	// crashAt, if set, is called at the points where a crash must lose nothing ("payload
	// written", "committed"): the SIGKILL tests kill the process there.
	crashAt func(point string)
}

func defaultTuning() tuning {
	return tuning{migrations: migrations()}
}

// Open opens (creating if needed) the database at path, normally <data_dir>/camgate.db.
func Open(path string, opts Options) (*DB, error) {
	return open(path, opts, defaultTuning())
}

func open(path string, opts Options, tune tuning) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	maxBytes := opts.OutboxMaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultOutboxMaxBytes
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		// The freelist is rebuilt by a scan at open instead of being rewritten on every commit:
		// one page less per commit is a third less flash wear for a small outbox commit.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Room for the outbox without remapping, which would make a commit wait for readers.
		InitialMmapSize: int(min(2*maxBytes, 256<<20)),
		// A safety net, not the bound: the outbox's own accounting keeps the file near
		// OutboxMaxBytes (see TestOutboxFileBoundedUnderChurn); this only stops a bug from
		// filling the flash, at the price of failing writes instead.
		MaxSize: int(min(4*maxBytes+32<<20, 1<<30)),
		NoSync:  tune.noSync,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: %w (is another camgate running?)", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{
		bolt:     bdb,
		log:      log,
		cameras:  &Table{db: bdb, bucket: bucketCameras},
		settings: &Table{db: bdb, bucket: bucketSettings},
		episodes: &Table{db: bdb, bucket: bucketEpisodes},
	}
	var st *outboxState
	refs := make(map[string]bool)
	files := &payloadDir{path: path + ".payloads", noSync: tune.noSync, log: log}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, tune.migrations, log); err != nil {
			return err
		}
		var err error
		st, err = loadOutbox(tx, log, refs)
		return err
	})
	if err == nil {
		err = files.sweep(refs)
	}
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.outbox = newOutbox(bdb, maxBytes, log, st, files)
	db.outbox.crashAt = tune.crashAt
	return db, nil
}

// Close stops the outbox, waiting for commits in progress, and closes the file.
func (db *DB) Close() error {
	db.outbox.close()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Cameras is the table of cameras, keyed by camera_id.
func (db *DB) Cameras() *Table { return db.cameras }

// Settings is the table of runtime settings changed from the pairing page or MQTT.
func (db *DB) Settings() *Table { return db.settings }

// Episodes is the table of open motion episodes, one per camera.
func (db *DB) Episodes() *Table { return db.episodes }

// Outbox is the durable per-destination message queue.
func (db *DB) Outbox() *Outbox { return db.outbox }

// A migration moves the database from version `from` to from+1 inside one transaction, so a
// crash mid-migration leaves the old version intact.
type migration struct {
	from int
	step func(tx *bolt.Tx) error
}

func migrations() []migration {
	return []migration{
		{from: 0, step: func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketCameras, bucketSettings} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return nil
		}},
		// 2: records may refer to a payload file (flagFile) in <database>.payloads, which an
		// older camgate would not read; there is nothing to convert.
		{from: 1, step: func(*bolt.Tx) error { return nil }},
	}
}

// migrate brings the schema to the last version steps know; version 0 is a new, empty file.
func migrate(tx *bolt.Tx, steps []migration, log *slog.Logger) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	version := 0
	if v := meta.Get(keySchema); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("schema version record has %d bytes, want 8", len(v))
		}
		version = int(binary.BigEndian.Uint64(v))
	}
	fresh := version == 0
	target := len(steps)
	if version > target {
		return fmt.Errorf("%w: file has version %d, this camgate knows up to %d", ErrSchemaTooNew, version, target)
	}
	for _, m := range steps[version:] {
		if m.from != version {
			return fmt.Errorf("schema migrations out of order: step from %d at version %d", m.from, version)
		}
		if err := m.step(tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", version, version+1, err)
		}
		if !fresh {
			log.Info("store: migrated schema", "from", version, "to", version+1)
		}
		version++
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(version))
	if err := meta.Put(keySchema, buf[:]); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	return nil
}
