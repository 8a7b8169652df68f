package rtsp

import (
	"math/rand/v2"
	"time"
)

// backoff paces reconnect attempts. While an outage is young, attempts come well under a second
// apart, so video is back within moments of a peer's return; after fastPeriod the delay doubles
// up to max. A session that stayed healthy for healthyAfter resets it.
type backoff struct {
	fast         time.Duration // upper bound of the delay while the outage is young
	fastPeriod   time.Duration
	max          time.Duration
	healthyAfter time.Duration

	outageStart time.Time
	slow        time.Duration
}

func newBackoff() *backoff {
	return &backoff{
		fast:         time.Second,
		fastPeriod:   time.Minute,
		max:          30 * time.Second,
		healthyAfter: 10 * time.Second,
	}
}

// next returns how long to wait before the next attempt, given when the last session started
// (zero if it never came up) and now.
func (b *backoff) next(sessionStart, now time.Time) time.Duration {
	if !sessionStart.IsZero() && now.Sub(sessionStart) >= b.healthyAfter || b.outageStart.IsZero() {
		b.outageStart = now
		b.slow = 0
	}
	if now.Sub(b.outageStart) < b.fastPeriod {
		return jitter(b.fast)
	}
	if b.slow == 0 {
		b.slow = 2 * b.fast
	} else {
		b.slow = min(2*b.slow, b.max)
	}
	return jitter(b.slow)
}

// jitter spreads attempts over [d/2, d) so that many cameras do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// authBackoff paces attempts after a refused password. Cameras and NVRs lock an account, or ban
// the address, after 5-7 failed logins for up to 30 minutes, so at most three attempts fall in
// the first minute (a typo fixed on the camera's side is still found soon), then one every
// slow or more. A new password restarts the relay and so tries at once.
type authBackoff struct {
	fast, slow time.Duration
	fastTries  int
}

// PasswordRetry is the slow period after a refused password: whoever retries a camera's
// password after several refusals waits at least this long.
const PasswordRetry = 5 * time.Minute

func newAuthBackoff() authBackoff {
	return authBackoff{fast: 20 * time.Second, slow: PasswordRetry, fastTries: 3}
}

// next is the wait after the n-th refusal in a row (n >= 1). Jitter only lengthens it.
func (b authBackoff) next(n int) time.Duration {
	d := b.slow
	if n < b.fastTries {
		d = b.fast
	}
	return d + rand.N(d/8+1)
}
