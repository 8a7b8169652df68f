package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// filePayloadMin is the payload size from which a message's payload lives in a file of its own
// and its record holds only a reference. bbolt rewrites a whole leaf, with every value stored in
// it, whenever any key of that leaf changes: an alarm JPEG queued inline was rewritten by every
// later message beside it (four cameras' snapshots, about 1 MB, per mail; bench/README.md,
// issue 12). Four pages: smaller values cost little when a neighbour rewrites them.
const filePayloadMin = 16 << 10

// payloadNameLen is the length of a payload file's name: 16 random bytes in hex.
const payloadNameLen = 32

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payloadRef is what a record holds instead of a payload kept in a file.
type payloadRef struct {
	name string // payloadNameLen lowercase hex digits, a file in the payload directory
	size int64
	crc  uint32 // CRC-32C of the payload: a torn or damaged file is refused, not sent
}

// payloadDir is the directory of payload files, <database>.payloads. Files are created under
// their final name, written and fsynced, and the directory fsynced, before the commit that
// references them: a crash before that commit leaves an unreferenced file, which the next Open
// deletes; after it, the file is whole. A file is deleted only after the commit that removed
// its last reference, so a record never points at a missing file.
type payloadDir struct {
	path   string
	noSync bool
	log    *slog.Logger
}

func (d *payloadDir) file(name string) string { return filepath.Join(d.path, name) }

// adopt stores payload in a new file and fsyncs it and the directory. If src is a file holding
// exactly payload, the new file is a hard link to it, so the payload's bytes reach the flash
// once, by this fsync; otherwise (no src, another filesystem, links not supported, other
// contents) the payload is written.
func (d *payloadDir) adopt(src string, payload []byte) (payloadRef, error) {
	var id [payloadNameLen / 2]byte
	if _, err := rand.Read(id[:]); err != nil {
		return payloadRef{}, fmt.Errorf("store: payload file name: %w", err)
	}
	ref := payloadRef{name: hex.EncodeToString(id[:]), size: int64(len(payload)), crc: crc32.Checksum(payload, castagnoli)}
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return payloadRef{}, fmt.Errorf("store: payload directory: %w", err)
	}
	err := d.link(src, ref)
	if err != nil {
		err = d.write(ref.name, payload)
	}
	if err == nil {
		err = d.syncDir()
	}
	if err != nil {
		d.remove(ref.name)
		return payloadRef{}, fmt.Errorf("store: payload file: %w", err)
	}
	return ref, nil
}

// link makes ref's file a hard link to src, fsynced, if src holds the payload ref describes.
func (d *payloadDir) link(src string, ref payloadRef) error {
	if src == "" {
		return os.ErrNotExist
	}
	if err := os.Link(src, d.file(ref.name)); err != nil {
		return err
	}
	// Read back through the link: what is queued must be what the caller gave, whatever
	// happened to src.
	if _, err := d.read(ref); err != nil {
		d.remove(ref.name)
		return err
	}
	f, err := os.OpenFile(d.file(ref.name), os.O_RDWR, 0)
	if err == nil {
		err = d.sync(f)
	}
	if err != nil {
		d.remove(ref.name)
	}
	return err
}

func (d *payloadDir) write(name string, payload []byte) error {
	f, err := os.OpenFile(d.file(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(payload); err != nil {
		f.Close()
		return err
	}
	return d.sync(f)
}

// sync fsyncs and closes f.
func (d *payloadDir) sync(f *os.File) error {
	var err error
	if !d.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes the directory's entries durable: without it a power loss can forget a file
// whose contents were fsynced.
func (d *payloadDir) syncDir() error {
	if d.noSync {
		return nil
	}
	dir, err := os.Open(d.path)
	if err != nil {
		return err
	}
	err = dir.Sync()
	if cerr := dir.Close(); err == nil {
		err = cerr
	}
	return err
}

// read returns the payload ref names, checked against its size and checksum. Its memory is
// bounded by the size the record claims, which the caller bounds.
func (d *payloadDir) read(ref payloadRef) ([]byte, error) {
	f, err := os.Open(d.file(ref.name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != ref.size {
		return nil, fmt.Errorf("%w: payload file %s has %d bytes, its record says %d", errBadRecord, ref.name,
			st.Size(), ref.size)
	}
	b := make([]byte, ref.size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("payload file %s: %w", ref.name, err)
	}
	if crc32.Checksum(b, castagnoli) != ref.crc {
		return nil, fmt.Errorf("%w: payload file %s does not match its checksum", errBadRecord, ref.name)
	}
	return b, nil
}

// remove deletes payload files whose last reference is gone. A failure only leaves a file that
// the next Open deletes, so it is logged, not returned.
func (d *payloadDir) remove(names ...string) {
	for _, name := range names {
		if err := os.Remove(d.file(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("store: payload file not removed", "file", name, "error", err)
		}
	}
}

// sweep deletes the payload files no record references (left by a crash between a file's write
// and its commit, or between a record's removal and its file's) and logs references whose file
// is missing. It runs at Open, before any Enqueue.
func (d *payloadDir) sweep(referenced map[string]bool) error {
	entries, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		entries = nil
	} else if err != nil {
		return fmt.Errorf("store: payload directory: %w", err)
	}
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !validPayloadName(name) || !e.Type().IsRegular() {
			continue // not ours: left alone
		}
		present[name] = true
		if !referenced[name] {
			d.remove(name)
		}
	}
	for name := range referenced {
		if !present[name] {
			d.log.Error("store: outbox record refers to a missing payload file; it will not be sent", "file", name)
		}
	}
	return nil
}

func validPayloadName(name string) bool {
	if len(name) != payloadNameLen {
		return false
	}
	for _, c := range []byte(name) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
