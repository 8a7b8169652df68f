package rtsp

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A camera that falls silent while its relay is paced ends the session within about the read
// timeout even if no tick ever comes (here the Pacer's period is an hour): the paced wait is
// bounded by the silence check, not by the Pacer's clock alone.
func TestPacedWaitEndsOnSilenceWithoutTicks(t *testing.T) {
	conn, _, raw := tcpPair(t) // the camera's end never sends
	rd := &connReader{conn: conn, raw: raw, block: true}
	const timeout = 300 * time.Millisecond
	w := newReadWait(conn, rd, timeout, NewPacer(time.Hour, 1), time.Now())
	defer w.stop()
	ended := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if done, err := w.wait(context.Background(), time.Now()); done || err != nil {
				ended <- err
				return
			}
			if !w.paced {
				ended <- errors.New("not paced: the test would not test the paced wait")
				return
			}
			if _, err := rd.Read(buf); err != nil && !errors.Is(err, errWouldBlock) {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if err == nil || !w.paced {
			t.Fatalf("paced wait ended with %v, want the silence error", err)
		}
	case <-time.After(timeout + 20*time.Second):
		t.Fatalf("a silent camera's paced wait did not end within %s of its %s timeout", 20*time.Second, timeout)
	}
}
