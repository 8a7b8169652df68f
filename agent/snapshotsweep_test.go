package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A crash between a mail's temporary snapshot file and its rename leaves the file behind; the
// next start removes such files and nothing else: not the page's snapshots, not other files.
func TestStartRemovesTheTemporarySnapshotsACrashLeft(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "snapshots")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"porch.jpg", "porch.jpg.123456.tmp", "yard.jpg.9.tmp", "notes.tmp", "yard.jpg"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sweepSnapshotTemps(data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"notes.tmp", "porch.jpg", "yard.jpg"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	sweepSnapshotTemps(filepath.Join(data, "absent"), slog.New(slog.NewTextHandler(io.Discard, nil))) // no dir: no error
}
