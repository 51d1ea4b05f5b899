package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// coreTable: N one-shot triggers with ids and empty payloads, due uniformly
// over the next 10 s, scheduled from one goroutine as fast as possible onto
// the in-memory store, a no-op consumer, 16 workers.
func coreTable(counts []int) {
	t := newTable("Core: N one-shot triggers due over 10 s, memstore, no-op consumer, 16 workers, GOMAXPROCS="+strconv.Itoa(runtime.GOMAXPROCS(0)),
		"run", "N", "schedule ns/op", "allocs/op", "heap B/pending (1h)", "due at hand-over",
		"late p50", "p99", "p99.9", "max", "earliest start", "executed")
	for _, n := range counts {
		for _, run := range []struct {
			name    string
			bytes   func(int) float64
			measure func(int, time.Duration) coreResult
		}{
			{"triggerkit", pendingBytes, coreRun},
			{"time.AfterFunc", afterFuncBytes, afterFuncRun},
		} {
			bytes := run.bytes(n)
			r := run.measure(n, 10*time.Second)
			t.row(run.name, strconv.Itoa(n), fmt.Sprintf("%.0f", r.nsPerOp), fmt.Sprintf("%.2f", r.allocsPerOp), fmt.Sprintf("%.0f", bytes),
				strconv.Itoa(r.dueAtHandOver),
				dur(r.late.p(0.50)), dur(r.late.p(0.99)), dur(r.late.p(0.999)), dur(r.late.max()),
				signed(r.earliest), strconv.Itoa(r.executed))
		}
	}
}

// afterFuncRun is the baseline: the same workload with one time.AfterFunc
// per job and nothing persisted.
func afterFuncRun(n int, spread time.Duration) coreResult {
	offsets := make([]time.Duration, n)
	for i := range n {
		offsets[i] = time.Duration(rand.Int64N(int64(spread)))
	}
	starts := make([]int64, n)
	var executed atomic.Int64
	done := make(chan struct{})
	handedLate := make([]bool, n)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	begin := time.Now()
	for i := range n {
		due := begin.Add(offsets[i])
		time.AfterFunc(time.Until(due), func() {
			starts[i] = int64(time.Since(due))
			if executed.Add(1) == int64(n) {
				close(done)
			}
		})
		handedLate[i] = !time.Now().Before(due)
	}
	elapsed := time.Since(begin)
	runtime.ReadMemStats(&m1)
	<-done
	return summarize(n, elapsed, &m0, &m1, starts, handedLate, executed.Load())
}

func afterFuncBytes(n int) float64 {
	timers := make([]*time.Timer, n)
	before := heap()
	for i := range n {
		timers[i] = time.AfterFunc(time.Hour, func() {})
	}
	after := heap()
	for _, t := range timers {
		t.Stop()
	}
	return float64(after-before) / float64(n)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type coreResult struct {
	nsPerOp, allocsPerOp float64
	dueAtHandOver        int
	late                 samples
	earliest             time.Duration
	executed             int
}

func coreRun(n int, spread time.Duration) coreResult {
	ids, offsets := make([]string, n), make([]time.Duration, n)
	for i := range n {
		ids[i] = "t" + strconv.Itoa(i)
		offsets[i] = time.Duration(rand.Int64N(int64(spread)))
	}
	starts := make([]int64, n) // consumer start minus due time, ns
	var executed atomic.Int64
	done := make(chan struct{})
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		late := time.Since(t.DueAt)
		i, _ := strconv.Atoi(t.ID[1:])
		starts[i] = int64(late)
		if executed.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	s := mustStart(memstore.New(), consumer)
	defer s.Stop(context.Background())

	handedLate := make([]bool, n)
	ctx := context.Background()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	begin := time.Now()
	for i := range n {
		due := begin.Add(offsets[i])
		if _, err := s.Schedule(ctx, trigger.Trigger{ID: ids[i], DueAt: due}); err != nil {
			log.Fatal(err)
		}
		handedLate[i] = !time.Now().Before(due)
	}
	elapsed := time.Since(begin)
	runtime.ReadMemStats(&m1)

	select {
	case <-done:
	case <-time.After(spread + time.Minute):
		log.Printf("core N=%d: only %d of %d executed after %v", n, executed.Load(), n, spread+time.Minute)
	}
	return summarize(n, elapsed, &m0, &m1, starts, handedLate, executed.Load())
}

func summarize(n int, elapsed time.Duration, m0, m1 *runtime.MemStats, starts []int64, handedLate []bool, executed int64) coreResult {
	r := coreResult{
		nsPerOp:     float64(elapsed.Nanoseconds()) / float64(n),
		allocsPerOp: float64(m1.Mallocs-m0.Mallocs) / float64(n),
		executed:    int(executed),
		earliest:    time.Duration(1<<63 - 1),
	}
	for i := range n {
		late := time.Duration(starts[i])
		if handedLate[i] {
			r.dueAtHandOver++
			continue
		}
		r.late = append(r.late, late)
		r.earliest = min(r.earliest, late)
	}
	return r
}

// pendingBytes schedules n triggers due in an hour (beyond the horizon, so
// only the store holds them) and returns the retained heap per trigger.
func pendingBytes(n int) float64 {
	s := mustStart(memstore.New(), trigger.ConsumerFunc(func(context.Context, *trigger.Trigger) error { return nil }))
	defer s.Stop(context.Background())
	ids := make([]string, n)
	for i := range n {
		ids[i] = "t" + strconv.Itoa(i)
	}
	due := time.Now().Add(time.Hour)
	before := heap()
	for i := range n {
		if _, err := s.Schedule(context.Background(), trigger.Trigger{ID: ids[i], DueAt: due}); err != nil {
			log.Fatal(err)
		}
	}
	after := heap()
	runtime.KeepAlive(ids)
	return float64(after-before) / float64(n)
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mustStart(store trigger.Store, c trigger.Consumer) *trigger.Scheduler {
	s, err := trigger.New(store, c, trigger.Config{Workers: 16, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	return s
}

type samples []time.Duration

func (s samples) sorted() samples {
	if !slices.IsSorted(s) {
		slices.Sort(s)
	}
	return s
}

func (s samples) p(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	s = s.sorted()
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (s samples) max() time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s.sorted()[len(s)-1]
}

func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func signed(d time.Duration) string {
	if d < 0 {
		return "-" + dur(-d) + " EARLY"
	}
	return "+" + dur(d)
}
