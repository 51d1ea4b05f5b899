package wheel

import (
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// payload has the size the scheduler is expected to store in a timer.
type payload = [24]byte

// entry is the scheduler's value: one pointer, its id, per timer.
type entry struct {
	id       string
	priority int32
	queue    uint16
	boost    bool
}

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
func armed(n int, span time.Duration) *Wheel[payload] {
	w := New[payload](time.Millisecond, benchStart)
	for _, d := range offsets(n, span) {
		w.Add(payload{}, benchStart.Add(d))
	}
	return w
}

// BenchmarkAdd arms a timer at a random instant within 10 s, with 1M to 2M
// other timers armed, as the scheduler arms a trigger's next run (it never
// removes a timer: a stale one's claim fails). The wheel never reaches the
// timers here, so it is armed afresh (untimed) every 2^20 Adds, to keep its
// size, and the memory the benchmark holds, bounded.
func BenchmarkAdd(b *testing.B) {
	const n = 1 << 20
	w := armed(n, 10*time.Second)
	whens := offsets(1<<16, 10*time.Second)
	i := 0
	for b.Loop() {
		if i == n {
			b.StopTimer()
			w = armed(n, 10*time.Second)
			i = 0
			b.StartTimer()
		}
		w.Add(payload{}, benchStart.Add(whens[i&(1<<16-1)]))
		i++
	}
	b.ReportMetric(float64(unsafe.Sizeof(node[payload]{})), "B/timer")
}

// BenchmarkAdvance fires 100k timers spread over one second: with one Advance
// over the whole second, with one Advance per 1 ms tick, as a driver that
// wakes at every occupied tick does, or with one every 10 µs, as the
// scheduler's driver and workers advance at 100,000 fires a second, firing
// each timer at its instant within its tick. Arming is not timed.
func BenchmarkAdvance(b *testing.B) {
	const n = 100_000
	for _, bc := range []struct {
		name string
		step time.Duration
	}{{"jump=1s", time.Second}, {"step=1ms", time.Millisecond}, {"step=10µs", 10 * time.Microsecond}} {
		b.Run(bc.name, func(b *testing.B) {
			w := New[payload](time.Millisecond, benchStart)
			whens := offsets(n, time.Second)
			fired := 0
			fire := func(payload, time.Time) { fired++ }
			now := benchStart
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for _, d := range whens {
					w.Add(payload{}, now.Add(d))
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
	w := armed(100_000, 24*time.Hour)
	now := benchStart
	fire := func(v payload, when time.Time) { w.Add(v, when.Add(24*time.Hour)) }
	for b.Loop() {
		now = now.Add(10 * time.Minute)
		w.Advance(now, fire)
	}
}

// BenchmarkMillion arms 1,000,000 timers of the scheduler's value, with
// distinct ids, at random instants within 10 s. add: ns/op and allocs/op of
// one Add, a new wheel (untimed) after each million. gc: the time of a forced
// runtime.GC() with the million armed, in wall and GC CPU time, and the live
// heap per timer, ids included.
func BenchmarkMillion(b *testing.B) {
	const n = 1_000_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "trigger-" + strconv.Itoa(i)
	}
	whens := offsets(n, 10*time.Second)
	value := func(i int) entry {
		return entry{id: ids[i], priority: int32(i % 3), queue: uint16(i % 5), boost: i%7 == 0}
	}

	b.Run("add", func(b *testing.B) {
		b.ReportAllocs()
		w := New[entry](time.Millisecond, benchStart)
		i := 0
		for b.Loop() {
			if i == n {
				b.StopTimer()
				w, i = New[entry](time.Millisecond, benchStart), 0
				b.StartTimer()
			}
			w.Add(value(i), benchStart.Add(whens[i]))
			i++
		}
	})

	b.Run("gc", func(b *testing.B) {
		w := New[entry](time.Millisecond, benchStart)
		for i := range n {
			w.Add(value(i), benchStart.Add(whens[i]))
		}
		runtime.GC() // the garbage of earlier runs
		cpu := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
		metrics.Read(cpu)
		start := cpu[0].Value.Float64()
		for b.Loop() {
			runtime.GC()
		}
		metrics.Read(cpu)
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/gc")
		// The CPU time depends less than the wall time on what else the
		// machine runs.
		b.ReportMetric((cpu[0].Value.Float64()-start)*1e3/float64(b.N), "cpu-ms/gc")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/n, "heapB/timer")
		runtime.KeepAlive(w)
	})
}
