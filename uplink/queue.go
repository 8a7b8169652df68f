package uplink

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/camgate/camgate/store"
)

// Queue is the part of store's durable outbox that a drain loop needs. *store.Outbox satisfies it.
type Queue interface {
	Peek(queue string, max int) ([]store.Message, error)
	Ack(queue string, seqs ...uint64) error
	Notify(queue string) <-chan struct{}
}

// backoff yields capped, jittered delays. It starts short so that a brief outage costs little and
// doubles up to max so that a long one does not hammer the far side.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, next: min}
}

// delay returns the next wait, uniformly drawn from [d/2, d], and doubles d up to the cap.
func (b *backoff) delay() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	half := d / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.next = b.min }

// sleep waits d or until ctx ends, and reports whether the full wait happened.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func seqs(msgs []store.Message) []uint64 {
	s := make([]uint64, len(msgs))
	for i, m := range msgs {
		s[i] = m.Seq
	}
	return s
}

var _ Queue = (*store.Outbox)(nil)
