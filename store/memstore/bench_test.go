package memstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// pending is how many triggers the benchmarks keep stored.
const pending = 1_000_000

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// dueTimes says when benchmark trigger i is due: in the order saved, as when
// triggers are scheduled a delay from now, or all over the next ten days.
var dueTimes = []struct {
	name string
	at   func(i int) time.Time
}{
	{"ascending", func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }},
	{"random", func(int) time.Time { return t0.Add(rand.N(240 * time.Hour)) }},
}

// ids makes trigger IDs of a fixed length (at least 8): "t0000000000000001"
// for length 17. Each call of next allocates one new string.
type ids struct{ buf []byte }

func newIDs(length int) *ids {
	b := make([]byte, length)
	for i := range b {
		b[i] = '0'
	}
	b[0] = 't'
	return &ids{b}
}

func (g *ids) next() string {
	for i := len(g.buf) - 1; i > 0; i-- {
		if g.buf[i] < '9' {
			g.buf[i]++
			break
		}
		g.buf[i] = '0'
	}
	return string(g.buf)
}

// fill saves n plain triggers with IDs from g, due as due says.
func fill(tb testing.TB, s *memstore.Store, g *ids, n int, due func(int) time.Time) {
	ctx := context.Background()
	for i := range n {
		if err := s.Save(ctx, t0, trigger.Trigger{ID: g.next(), Type: trigger.TypeNext, DueAt: due(i)}); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkSave saves plain triggers (an ID of 16 bytes, no payload) into a
// store that already holds a million. Each op includes making the new ID.
func BenchmarkSave(b *testing.B) {
	for _, due := range dueTimes {
		b.Run("due="+due.name, func(b *testing.B) {
			s, g := memstore.New(), newIDs(16)
			fill(b, s, g, pending, due.at)
			ctx := context.Background()
			b.ReportAllocs()
			i := pending
			for b.Loop() {
				if err := s.Save(ctx, t0, trigger.Trigger{ID: g.next(), Type: trigger.TypeNext, DueAt: due.at(i)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkClaimFinish claims a due trigger and records its outcome, next to
// a million triggers due later. Complete moves each run's trigger to
// completed (and saves a new one to keep the supply going); Reschedule sends
// it back to be due again, as a LOOP or CRON trigger does.
func BenchmarkClaimFinish(b *testing.B) {
	for _, kind := range []trigger.OutcomeKind{trigger.OutcomeComplete, trigger.OutcomeReschedule} {
		b.Run(kind.String(), func(b *testing.B) {
			ctx := context.Background()
			s, g := memstore.New(), newIDs(16)
			fill(b, s, g, pending, func(i int) time.Time { return t0.Add(time.Hour + time.Duration(i)*time.Millisecond) })
			const hot = 1024
			var hotIDs [hot]string
			for i := range hotIDs {
				hotIDs[i] = fmt.Sprintf("hot-%04d", i)
				if err := s.Save(ctx, t0, trigger.Trigger{ID: hotIDs[i], Type: trigger.TypeNext, DueAt: t0}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				claimFinish(b, s, kind, i, hotIDs[:], g)
				i++
			}
		})
	}
}

// claimFinish claims the i-th trigger of a benchmark and records outcome
// kind: one of hot, or for Complete a new one named by g, saved first.
func claimFinish(b *testing.B, s *memstore.Store, kind trigger.OutcomeKind, i int, hot []string, g *ids) {
	ctx := context.Background()
	now := t0.Add(time.Duration(i) * time.Microsecond)
	id := hot[i%len(hot)]
	if kind == trigger.OutcomeComplete {
		id = g.next()
		if err := s.Save(ctx, now, trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	t, err := s.Claim(ctx, id, trigger.Claim{Owner: "bench", Now: now, Until: now.Add(time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Finish(ctx, id, t.Token, trigger.Outcome{Kind: kind, Now: now, At: now}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClaimFinishParallel is BenchmarkClaimFinish run by GOMAXPROCS
// goroutines at once, as a scheduler's workers do: each claims and records
// the outcome of its own triggers, next to a million triggers due later, so
// that they meet only on the store's locks.
func BenchmarkClaimFinishParallel(b *testing.B) {
	for _, kind := range []trigger.OutcomeKind{trigger.OutcomeComplete, trigger.OutcomeReschedule} {
		b.Run(kind.String(), func(b *testing.B) {
			ctx := context.Background()
			s := memstore.New()
			fill(b, s, newIDs(16), pending, func(i int) time.Time { return t0.Add(time.Hour + time.Duration(i)*time.Millisecond) })
			var workers atomic.Int32
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := workers.Add(1)
				// This goroutine's IDs: "w<w>-..." for its hot triggers,
				// "u<w>..." for the new ones of Complete.
				g := newIDs(16)
				g.buf[0], g.buf[1] = 'u', byte('a'+w%26)
				g.buf[2] = byte('a' + w/26%26)
				const hot = 256
				var hotIDs [hot]string
				for i := range hotIDs {
					hotIDs[i] = fmt.Sprintf("w%03d-%04d", w, i)
					if err := s.Save(ctx, t0, trigger.Trigger{ID: hotIDs[i], Type: trigger.TypeNext, DueAt: t0}); err != nil {
						b.Fatal(err)
					}
				}
				for i := 0; pb.Next(); i++ {
					claimFinish(b, s, kind, i, hotIDs[:], g)
				}
			})
		})
	}
}

// BenchmarkDue reads a page of 100 due triggers from a store of a million,
// as the scheduler's scan does; "ties" pages through 10,000 triggers due at
// one instant, as after a CRON burst, from a cursor at the middle of them.
func BenchmarkDue(b *testing.B) {
	ctx := context.Background()
	b.Run("million", func(b *testing.B) {
		s := memstore.New()
		fill(b, s, newIDs(16), pending, dueTimes[0].at)
		q := trigger.DueQuery{Now: t0.Add(time.Hour), Until: t0.Add(time.Hour), After: trigger.Ref{DueAt: t0.Add(time.Minute)}, Limit: 100}
		b.ReportAllocs()
		for b.Loop() {
			if refs, err := s.Due(ctx, q); err != nil || len(refs) != 100 {
				b.Fatal(len(refs), err)
			}
		}
	})
	b.Run("ties", func(b *testing.B) {
		s := memstore.New()
		at := t0.Add(time.Minute)
		g := newIDs(16)
		for range 10000 {
			if err := s.Save(ctx, t0, trigger.Trigger{ID: g.next(), Type: trigger.TypeCron, DueAt: at}); err != nil {
				b.Fatal(err)
			}
		}
		q := trigger.DueQuery{Now: t0.Add(time.Hour), Until: t0.Add(time.Hour), Limit: 5000}
		refs, err := s.Due(ctx, q)
		if err != nil || len(refs) != 5000 {
			b.Fatal(len(refs), err)
		}
		q.After, q.Limit = refs[len(refs)-1], 100
		b.ReportAllocs()
		for b.Loop() {
			if refs, err := s.Due(ctx, q); err != nil || len(refs) != 100 {
				b.Fatal(len(refs), err)
			}
		}
	})
}

// BenchmarkRetainedBytes reports the heap a store keeps per pending trigger
// (B/trigger): everything, IDs included, after saving a million plain
// triggers, with IDs of 16 bytes and of 36 (a UUID's length).
func BenchmarkRetainedBytes(b *testing.B) {
	for _, idLen := range []int{16, 36} {
		for _, due := range dueTimes {
			b.Run(fmt.Sprintf("id=%dB/due=%s", idLen, due.name), func(b *testing.B) {
				for b.Loop() {
					before := heapAlloc()
					s := memstore.New()
					fill(b, s, newIDs(idLen), pending, due.at)
					after := heapAlloc()
					runtime.KeepAlive(s)
					b.ReportMetric(float64(after-before)/pending, "B/trigger")
				}
			})
		}
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkGC times a full garbage collection (ms/gc) with a million plain
// triggers stored, which the collector marks on every cycle, against the
// same million ID strings alone (ids), which it marks whatever the store
// does: the scheduler keeps them too.
func BenchmarkGC(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		s := memstore.New()
		fill(b, s, newIDs(16), pending, dueTimes[1].at)
		timeGC(b)
		runtime.KeepAlive(s)
	})
	b.Run("ids", func(b *testing.B) {
		g := newIDs(16)
		ids := make([]string, pending)
		for i := range ids {
			ids[i] = g.next()
		}
		timeGC(b)
		runtime.KeepAlive(ids)
	})
}

func timeGC(b *testing.B) {
	runtime.GC()
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/gc")
}
