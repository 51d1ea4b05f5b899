package trigger_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// BenchmarkSchedule measures Schedule on the in-memory store: "armed"
// triggers are due within the horizon and go into the timing wheel,
// "stored" ones are due in an hour and stay in the store only.
func BenchmarkSchedule(b *testing.B) {
	for _, bc := range []struct {
		name string
		due  time.Duration
	}{{"armed", 50 * time.Second}, {"stored", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			s, ids := startNoop(b)
			due := time.Now().Add(bc.due)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Schedule(ctx, trigger.Trigger{ID: ids[i], DueAt: due.Add(time.Duration(i) * time.Microsecond)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScheduleBatch measures ScheduleBatch on the in-memory store,
// per trigger, with batches of 1 to 1,000 triggers due within the horizon.
func BenchmarkScheduleBatch(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			s, ids := startNoop(b)
			due := time.Now().Add(50 * time.Second)
			ctx := context.Background()
			batch := make([]trigger.Trigger, 0, size)
			b.ReportAllocs()
			b.ResetTimer()
			for lo := 0; lo < b.N; lo += size {
				batch = batch[:0]
				for i := lo; i < min(b.N, lo+size); i++ {
					batch = append(batch, trigger.Trigger{ID: ids[i], DueAt: due.Add(time.Duration(i) * time.Microsecond)})
				}
				if _, err := s.ScheduleBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// startNoop starts a scheduler on memstore with a no-op consumer, stopped
// when b ends, and returns it with b.N trigger IDs.
func startNoop(b *testing.B) (*trigger.Scheduler, []string) {
	s, err := trigger.New(memstore.New(), trigger.ConsumerFunc(func(context.Context, *trigger.Trigger) error { return nil }), trigger.Config{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	s.Start(context.Background())
	b.Cleanup(func() { s.Stop(context.Background()) })
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "t" + strconv.Itoa(i)
	}
	return s, ids
}

// BenchmarkFire measures the run path: b.N triggers already due are
// recovered at Start, claimed, run by a no-op consumer and completed.
func BenchmarkFire(b *testing.B) {
	store := memstore.New()
	now := time.Now()
	ctx := context.Background()
	for i := range b.N {
		if err := store.Save(ctx, now, trigger.Trigger{ID: "t" + strconv.Itoa(i), Type: trigger.TypeNext, DueAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	n := 0
	var mu sync.Mutex
	s, err := trigger.New(store, trigger.ConsumerFunc(func(context.Context, *trigger.Trigger) error {
		mu.Lock()
		n++
		if n == b.N {
			close(done)
		}
		mu.Unlock()
		return nil
	}), trigger.Config{Logger: quiet, ScanLimit: 10000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	s.Start(ctx)
	<-done
	b.StopTimer()
	s.Stop(ctx)
}
