package wheel

import (
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

// payload has the size the scheduler is expected to store in a Timer.
type payload = [24]byte

var benchStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// offsets returns n random offsets in [0, span).
func offsets(n int, span time.Duration) []time.Duration {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(rng.Int64N(int64(span)))
	}
	return out
}

// armed returns a 1 ms wheel holding n timers due within span.
func armed(n int, span time.Duration) (*Wheel[payload], []Timer[payload]) {
	w := New[payload](time.Millisecond, benchStart)
	timers := make([]Timer[payload], n)
	for i, d := range offsets(n, span) {
		w.Add(&timers[i], benchStart.Add(d))
	}
	return w, timers
}

// BenchmarkAdd re-arms a random one of 1M armed timers at a random instant
// within 10 s: an O(1) unlink and link among a million.
func BenchmarkAdd(b *testing.B) {
	const n = 1 << 20
	w, timers := armed(n, 10*time.Second)
	whens := offsets(1<<16, 10*time.Second)
	idx := make([]int32, 1<<16)
	for i := range idx {
		idx[i] = int32(rand.N(n))
	}
	i := 0
	for b.Loop() {
		w.Add(&timers[idx[i&(1<<16-1)]], benchStart.Add(whens[i&(1<<16-1)]))
		i++
	}
	b.ReportMetric(float64(unsafe.Sizeof(timers[0])), "B/timer")
}

// BenchmarkAddRemove arms a fresh timer within 10 s and removes it again,
// with 1M other timers armed.
func BenchmarkAddRemove(b *testing.B) {
	w, _ := armed(1<<20, 10*time.Second)
	spare := make([]Timer[payload], 1<<10)
	whens := offsets(1<<16, 10*time.Second)
	i := 0
	for b.Loop() {
		t := &spare[i&(1<<10-1)]
		w.Add(t, benchStart.Add(whens[i&(1<<16-1)]))
		w.Remove(t)
		i++
	}
}

// BenchmarkAdvance fires 100k timers spread over one second, either with one
// Advance over the whole second or with one Advance per 1 ms tick, as a
// driver that wakes at every occupied tick does. Arming is not timed.
func BenchmarkAdvance(b *testing.B) {
	const n = 100_000
	for _, bc := range []struct {
		name string
		step time.Duration
	}{{"jump=1s", time.Second}, {"step=1ms", time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			w := New[payload](time.Millisecond, benchStart)
			timers := make([]Timer[payload], n)
			whens := offsets(n, time.Second)
			fired := 0
			fire := func(*Timer[payload]) { fired++ }
			now := benchStart
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for i := range timers {
					w.Add(&timers[i], now.Add(whens[i]))
				}
				b.StartTimer()
				for end := now.Add(time.Second); now.Before(end); {
					now = now.Add(bc.step)
					w.Advance(now, fire)
				}
			}
			if fired != n*b.N || w.Len() != 0 {
				b.Fatalf("fired %d, %d left; want %d, 0", fired, w.Len(), n*b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/timer")
		})
	}
}

// BenchmarkAdvanceFar jumps 10 minutes at a time through 100k timers spread
// over a day, re-arming each fired timer a day later: the driver slept long
// and the wheel must skip empty slots instead of walking every tick.
func BenchmarkAdvanceFar(b *testing.B) {
	w, _ := armed(100_000, 24*time.Hour)
	now := benchStart
	fire := func(t *Timer[payload]) { w.Add(t, t.When().Add(24*time.Hour)) }
	for b.Loop() {
		now = now.Add(10 * time.Minute)
		w.Advance(now, fire)
	}
}
