package testtool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// cleanupRecorder is a testing.TB that records errors and keeps cleanups for the test to run.
type cleanupRecorder struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *cleanupRecorder) Helper()             {}
func (r *cleanupRecorder) Cleanup(f func())    { r.cleanups = append(r.cleanups, f) }
func (r *cleanupRecorder) Logf(string, ...any) {}
func (r *cleanupRecorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// end runs the cleanups as the end of a test does and returns the errors reported.
func (r *cleanupRecorder) end() []string {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs
}

func TestGoReportsAStandInThatStopsEarly(t *testing.T) {
	r := &cleanupRecorder{TB: t}
	Go(context.Background(), r, "camera", func(context.Context) error { return errors.New("address in use") })
	// The report comes from Go's goroutine: give it time to arrive before the test ends.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		n := len(r.errs)
		r.mu.Unlock()
		if n > 0 {
			break
		}
	}
	if errs := r.end(); len(errs) != 1 || errs[0] != "camera stopped: address in use" {
		t.Errorf("errors = %q, want the camera's", errs)
	}
}

func TestGoStopsTheStandInAtTheEndWithoutAnError(t *testing.T) {
	r := &cleanupRecorder{TB: t}
	stopped := make(chan struct{})
	Go(context.Background(), r, "camera", func(ctx context.Context) error {
		defer close(stopped)
		<-ctx.Done()
		return ctx.Err()
	})
	if errs := r.end(); len(errs) != 0 {
		t.Errorf("errors = %q, want none: it stopped because the test ended", errs)
	}
	select {
	case <-stopped:
	default:
		t.Error("cleanup returned before the stand-in did")
	}
}
