// Package backoff computes retry delays: exponential growth with full-range
// jitter and a cap.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: the delay before retry n (n >= 1) is
// Base * Factor^(n-1), capped at Max, then moved by a random amount of up to
// Jitter times itself in either direction (and capped at Max again).
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Factor float64
	Jitter float64 // in [0, 1]
}

// Delay returns the delay before retry n. rnd returns a float in [0, 1); nil
// uses math/rand/v2.
func (p Policy) Delay(n int, rnd func() float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(p.Base) * math.Pow(p.Factor, float64(n-1))
	if d > float64(p.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(p.Max)
	}
	if p.Jitter > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		d += d * p.Jitter * (2*rnd() - 1)
	}
	if d > float64(p.Max) {
		d = float64(p.Max)
	}
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}
