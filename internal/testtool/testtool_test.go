package testtool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how the helper ended instead of ending the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = format
	panic(r)
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skip = format
	panic(r)
}

// need runs Need against r, catching the panic that stands for Fatalf and Skipf.
func need(r *recorder, names ...string) (path string) {
	defer func() {
		if v := recover(); v != nil && v != any(r) {
			panic(v)
		}
	}()
	return Need(r, "some-package", names...)
}

func TestNeedFindsAnyOfTheNames(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool-b")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	r := &recorder{TB: t}
	if got := need(r, "camgate-no-such-tool", "tool-b"); got != bin {
		t.Errorf("Need = %q (fatal %q, skip %q), want %s", got, r.fatal, r.skip, bin)
	}
}

func TestNeedFailsInCIAndSkipsElsewhere(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		if got := need(r, "camgate-no-such-tool"); got != "" {
			t.Fatalf("CI=%q: Need found %q", ci, got)
		}
		switch {
		case ci == "true" && (r.fatal == "" || r.skip != ""):
			t.Errorf("CI=true: fatal %q, skip %q; want a failure", r.fatal, r.skip)
		case ci == "" && (r.skip == "" || r.fatal != ""):
			t.Errorf("CI unset: fatal %q, skip %q; want a skip", r.fatal, r.skip)
		}
		if msg := r.fatal + r.skip; !strings.Contains(msg, "Debian package") {
			t.Errorf("CI=%q: message %q does not name the Debian package", ci, msg)
		}
	}
}

// A footprint sees what a leak would leave: ten more open files and ten more goroutines.
func TestFootprintSeesOpenFilesAndGoroutines(t *testing.T) {
	before, err := TakeFootprint()
	if err != nil {
		t.Fatal(err)
	}
	if before.Goroutines < 1 || before.FDs < 3 || before.HeapInuse == 0 || before.RSSKiB == 0 {
		t.Fatalf("implausible footprint %s", before)
	}
	stop := make(chan struct{})
	for range 10 {
		f, err := os.Open("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		go func() { <-stop }()
	}
	defer close(stop)
	after, err := TakeFootprint()
	if err != nil {
		t.Fatal(err)
	}
	if after.FDs-before.FDs != 10 || after.Goroutines-before.Goroutines != 10 {
		t.Errorf("after 10 opened files and 10 goroutines: %s, before %s", after, before)
	}
}
