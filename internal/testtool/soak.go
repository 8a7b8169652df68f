package testtool

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Footprint is what a long-running process could leak: goroutines, live heap, open files, and its
// resident memory as the kernel counts it (informational: RSS includes what the Go runtime has
// not yet returned, so it is reported, not bounded).
type Footprint struct {
	Goroutines int
	HeapInuse  uint64 // bytes in in-use heap spans after a GC
	FDs        int
	RSSKiB     int
}

// TakeFootprint measures this process. It takes the least of a few readings a little apart, each
// after a GC, so that a connection attempt caught in flight is not mistaken for growth.
func TakeFootprint() (Footprint, error) {
	best := Footprint{Goroutines: int(^uint(0) >> 1), HeapInuse: ^uint64(0), FDs: int(^uint(0) >> 1)}
	for i := range 5 {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return Footprint{}, fmt.Errorf("count open files: %w", err)
		}
		rss, err := rssKiB()
		if err != nil {
			return Footprint{}, err
		}
		best.Goroutines = min(best.Goroutines, runtime.NumGoroutine())
		best.HeapInuse = min(best.HeapInuse, m.HeapInuse)
		best.FDs = min(best.FDs, len(fds))
		best.RSSKiB = rss
	}
	return best, nil
}

func (f Footprint) String() string {
	return fmt.Sprintf("goroutines %d, heap in use %.2f MiB, open fds %d, RSS %.1f MiB",
		f.Goroutines, float64(f.HeapInuse)/(1<<20), f.FDs, float64(f.RSSKiB)/1024)
}

// rssKiB reads VmRSS from /proc/self/status.
func rssKiB() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

// FlatBounds is how much a footprint may grow between two samples and still count as flat.
type FlatBounds struct {
	Goroutines int
	FDs        int
	HeapInuse  uint64
}

// SoakBounds are the bounds `make soak` states: goroutines and open files within 5, live heap
// within 1 MiB, from the sample after the first thousand attempts to the last.
func SoakBounds() FlatBounds { return FlatBounds{Goroutines: 5, FDs: 5, HeapInuse: 1 << 20} }

// Footprinter samples the process as a soak test goes, and checks that it stays flat.
type Footprinter struct {
	t       testing.TB
	name    string
	samples []Footprint
	labels  []string
}

// NewFootprinter starts a record named name with a first sample labelled "start".
func NewFootprinter(t testing.TB, name string) *Footprinter {
	t.Helper()
	f := &Footprinter{t: t, name: name}
	f.Sample("start")
	return f
}

// Sample takes and logs a footprint.
func (f *Footprinter) Sample(label string) Footprint {
	f.t.Helper()
	fp, err := TakeFootprint()
	if err != nil {
		f.t.Fatal(err)
	}
	f.samples = append(f.samples, fp)
	f.labels = append(f.labels, label)
	f.t.Logf("soak %s, %s: %s", f.name, label, fp)
	return fp
}

// CheckFlat fails the test if the last sample grew beyond b from the one labelled from.
func (f *Footprinter) CheckFlat(from string, b FlatBounds) {
	f.t.Helper()
	i := -1
	for j, l := range f.labels {
		if l == from {
			i = j
		}
	}
	if i < 0 || len(f.samples) < 2 {
		f.t.Fatalf("soak %s: no sample %q to compare with", f.name, from)
	}
	base, end := f.samples[i], f.samples[len(f.samples)-1]
	if d := end.Goroutines - base.Goroutines; d > b.Goroutines || d < -b.Goroutines {
		f.t.Errorf("soak %s: goroutines went from %d to %d, want within %d", f.name, base.Goroutines, end.Goroutines,
			b.Goroutines)
	}
	if d := end.FDs - base.FDs; d > b.FDs || d < -b.FDs {
		f.t.Errorf("soak %s: open fds went from %d to %d, want within %d", f.name, base.FDs, end.FDs, b.FDs)
	}
	if end.HeapInuse > base.HeapInuse+b.HeapInuse {
		f.t.Errorf("soak %s: heap in use grew from %d to %d bytes, want under %d more", f.name, base.HeapInuse,
			end.HeapInuse, b.HeapInuse)
	}
	first := f.samples[0]
	f.t.Logf("soak %s: RSS %.1f MiB at the start, %.1f MiB at the end", f.name, float64(first.RSSKiB)/1024,
		float64(end.RSSKiB)/1024)
}
