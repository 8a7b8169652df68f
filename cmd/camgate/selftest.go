package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/camgate/camgate/store"
)

// cmdSelftest checks, on the target hardware, the parts most likely to break on a new
// architecture: the database (mmap, file locking, fsync) and the outbox round trip.
func cmdSelftest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("selftest", stderr)
	dir := fs.String("data-dir", "", "directory for the test database (default: a temporary one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "camgate-selftest-")
		if err != nil {
			return fmt.Errorf("selftest: %w", err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	db, err := store.Open(filepath.Join(*dir, "selftest.db"), store.Options{})
	if err != nil {
		return fmt.Errorf("selftest: store: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	payload := []byte(`{"selftest":true}`)
	ob := db.Outbox()
	if err := ob.Enqueue(ctx, "selftest", store.Message{Class: store.ClassEvent, Topic: "selftest",
		Payload: payload}); err != nil {
		return fmt.Errorf("selftest: enqueue: %w", err)
	}
	msgs, err := ob.Peek("selftest", 10)
	if err != nil {
		return fmt.Errorf("selftest: peek: %w", err)
	}
	if len(msgs) != 1 || !bytes.Equal(msgs[0].Payload, payload) {
		return fmt.Errorf("selftest: queued one message, read back %d", len(msgs))
	}
	// Ack takes no context: an acknowledgement is never dropped half-way.
	if err := ob.Ack("selftest", msgs[0].Seq); err != nil { //nolint:contextcheck // see above
		return fmt.Errorf("selftest: ack: %w", err)
	}
	if st := ob.Stats(); st.Depth != 0 {
		return fmt.Errorf("selftest: queue depth %d after ack, want 0", st.Depth)
	}
	fmt.Fprintln(stdout, "selftest ok: store opened, one message enqueued, read back and acknowledged")
	return nil
}
