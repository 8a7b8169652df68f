package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestPairCodeIsCreatedOnceAndRotatedInPlace(t *testing.T) {
	dir := t.TempDir()
	code, created, err := EnsurePairCode(dir)
	if err != nil || !created || len(code) != len("1234-5678") {
		t.Fatalf("first EnsurePairCode: %q, created %v, %v", code, created, err)
	}
	again, created, err := EnsurePairCode(dir)
	if err != nil || created || again != code {
		t.Fatalf("second EnsurePairCode: %q, created %v, %v; want %q, not created", again, created, err, code)
	}
	r := newPairCodeReader(dir)
	if got, err := r.Code(); err != nil || got != code {
		t.Fatalf("reader: %q, %v; want %q", got, err, code)
	}

	// Rotated by another process (pair-code run as root beside a daemon running as its own
	// user): the new file keeps the old one's owner, and the reader sees the new code.
	path := filepath.Join(dir, pairCodeFile)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534 // nobody: the daemon's user stands in
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	rotated, err := RotatePairCode(dir)
	if err != nil || rotated == code {
		t.Fatalf("RotatePairCode: %q, %v (old %q)", rotated, err, code)
	}
	if got, err := r.Code(); err != nil || got != rotated {
		t.Errorf("reader after the rotation: %q, %v; want %q", got, err, rotated)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != 0o600 {
		t.Errorf("rotated file: owner %d:%d mode %v, want %d:%d 0600", st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
	}

	// Without the file nobody logs in, until `camgate pair-code` makes a new one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Code(); err == nil {
		t.Errorf("reader without a file: %q, want an error", got)
	}
	fresh, err := PairCode(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Code(); err != nil || got != fresh {
		t.Errorf("reader after pair-code made a new file: %q, %v; want %q", got, err, fresh)
	}
}
