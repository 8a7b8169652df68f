package testtool

import (
	"context"
	"testing"
	"time"
)

// Go runs a stand-in (a simulated camera, a Flussonic stand-in, an event sink: anything with a
// Run(ctx) error) in a goroutine until ctx ends or the test is cleaned up, and fails the test if
// it returns an error before that (a port it could not take, say), which would otherwise show
// only as a peer that never answers. Cleanup stops it and waits up to 10 s for it to return, so
// that it cannot report after the test has ended.
func Go(ctx context.Context, t testing.TB, name string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("%s stopped: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("%s did not stop within 10 s of the test's end", name)
		}
	})
}
