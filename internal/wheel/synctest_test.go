package wheel

import (
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestDriverLoop drives the wheel the way the scheduler does, in fake time: a
// goroutine sleeps until Next and calls Advance(time.Now()) under the owner's
// mutex, while the test arms and re-arms timers at random instants.
// Every timer must fire at or after its instant and within one tick of it (or
// of its arming, for one armed in the past).
func TestDriverLoop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const tick = time.Millisecond
		const n = 2000
		type event struct{ when, armed, at time.Time }
		var (
			mu      sync.Mutex
			w       = New[int](tick, time.Now())
			rearms  = make([]int, n) // times fire re-arms timer i
			want    = make([]int, n) // expected number of fires
			armedAt = make([]time.Time, n)
			events  = make([][]event, n)
			rng     = rand.New(rand.NewPCG(1, 2))
			kick    = make(chan struct{}, 1)
			stop    = make(chan struct{})
			stopped = make(chan struct{})
		)
		fire := func(i int, when time.Time) {
			now := time.Now()
			events[i] = append(events[i], event{when, armedAt[i], now})
			if rearms[i] > 0 {
				rearms[i]--
				armedAt[i] = now
				w.Add(i, now.Add(time.Duration(rng.Int64N(int64(20*time.Second)))))
			}
		}
		go func() {
			defer close(stopped)
			for {
				mu.Lock()
				next, ok := w.Next()
				mu.Unlock()
				var sleep *time.Timer
				var wake <-chan time.Time
				if ok {
					sleep = time.NewTimer(time.Until(next))
					wake = sleep.C
				}
				select {
				case <-stop:
					return
				case <-kick:
				case <-wake:
				}
				if sleep != nil {
					sleep.Stop()
				}
				mu.Lock()
				w.Advance(time.Now(), fire)
				mu.Unlock()
			}
		}()

		for batch := range 20 {
			mu.Lock()
			for i := batch * 100; i < (batch+1)*100; i++ {
				if i%7 == 0 {
					rearms[i] = 2
				}
				want[i] = 1 + rearms[i]
				// Up to two minutes ahead, in whole nanoseconds, a few in the past.
				d := time.Duration(rng.Int64N(int64(2*time.Minute))) - time.Second
				armedAt[i] = time.Now()
				w.Add(i, armedAt[i].Add(d))
			}
			pause := time.Duration(rng.Int64N(int64(5 * time.Second))) // rng is shared with fire
			mu.Unlock()
			select {
			case kick <- struct{}{}:
			default:
			}
			time.Sleep(pause)
		}
		time.Sleep(5 * time.Minute) // long enough for every timer and re-arm
		close(stop)
		<-stopped

		if w.Len() != 0 {
			t.Errorf("%d timers still armed", w.Len())
		}
		for i, evs := range events {
			if len(evs) != want[i] {
				t.Errorf("timer %d fired %d times, want %d", i, len(evs), want[i])
			}
			for _, e := range evs {
				due := e.when
				if e.armed.After(due) { // armed in the past: due at once
					due = e.armed
				}
				if e.at.Before(e.when) || e.at.Sub(due) >= tick {
					t.Errorf("timer %d due %v, armed %v, fired at %v", i, e.when, e.armed, e.at)
				}
			}
		}
	})
}
