package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
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
//
// runs names the rows of each N, from coreRuns.
func coreTable(counts []int, runs []string) {
	t := newTable("Core: N one-shot triggers due over 10 s, memstore, no-op consumer, 16 workers, GOMAXPROCS="+strconv.Itoa(runtime.GOMAXPROCS(0)),
		"run", "N", "schedule ns/op", "allocs/op", "heap B/pending (1h)", "due at hand-over",
		"late p50", "p99", "p99.9", "max", "earliest start", "executed", "CPU/trigger")
	for _, n := range counts {
		for _, name := range runs {
			run := coreRuns[name]
			bytes := run.bytes(n)
			r := run.measure(n, 10*time.Second)
			t.row(run.label, strconv.Itoa(n), fmt.Sprintf("%.0f", r.nsPerOp), fmt.Sprintf("%.2f", r.allocsPerOp), fmt.Sprintf("%.0f", bytes),
				strconv.Itoa(r.dueAtHandOver),
				dur(r.late.p(0.50)), dur(r.late.p(0.99)), dur(r.late.p(0.999)), dur(r.late.max()),
				signed(r.earliest), strconv.Itoa(r.executed), cpuCell(r.cpuPerOp))
		}
	}
}

// coreRunner is a row of the core table: how its triggers are scheduled.
type coreRunner struct {
	label   string
	bytes   func(int) float64
	measure func(int, time.Duration) coreResult
}

// coreBatch is how many triggers the batch row schedules per call.
const coreBatch = 1000

// coreRuns are the rows the -runs flag names. The batch row's heap column
// is measured as the triggerkit row's: the store holds the same records.
var coreRuns = map[string]coreRunner{
	"triggerkit": {"triggerkit", pendingBytes, coreRun},
	"batch":      {"ScheduleBatch×" + strconv.Itoa(coreBatch), pendingBytes, batchRun},
	"afterfunc":  {"time.AfterFunc", afterFuncBytes, afterFuncRun},
}

// afterFuncRun is the baseline: the same workload with one time.AfterFunc
// per job and nothing persisted.
func afterFuncRun(n int, spread time.Duration) coreResult {
	w := newWorkload(n, spread)
	w.scheduleAll(1, func(i, _ int) {
		due := w.due(i)
		time.AfterFunc(time.Until(due), func() { w.ran(i, time.Since(due)) })
	})
	return w.result()
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
	cpuPerOp             time.Duration // the whole process's, from scheduling to the last start; 0 if unknown
	dueAtHandOver        int
	late                 samples
	earliest             time.Duration
	executed             int
}

func coreRun(n int, spread time.Duration) coreResult {
	ids, w, s := coreStart(n, spread)
	defer s.Stop(context.Background())
	ctx := context.Background()
	w.scheduleAll(1, func(i, _ int) {
		if _, err := s.Schedule(ctx, trigger.Trigger{ID: ids[i], DueAt: w.due(i)}); err != nil {
			log.Fatal(err)
		}
	})
	return w.result()
}

// batchRun is coreRun with ScheduleBatch calls of coreBatch triggers.
func batchRun(n int, spread time.Duration) coreResult {
	ids, w, s := coreStart(n, spread)
	defer s.Stop(context.Background())
	ctx := context.Background()
	batch := make([]trigger.Trigger, 0, coreBatch)
	w.scheduleAll(coreBatch, func(lo, hi int) {
		batch = batch[:0]
		for i := lo; i < hi; i++ {
			batch = append(batch, trigger.Trigger{ID: ids[i], DueAt: w.due(i)})
		}
		if _, err := s.ScheduleBatch(ctx, batch); err != nil {
			log.Fatal(err)
		}
	})
	return w.result()
}

// coreStart returns the ids and the workload of a core row, and its
// scheduler, started.
func coreStart(n int, spread time.Duration) ([]string, *workload, *trigger.Scheduler) {
	ids := make([]string, n)
	for i := range n {
		ids[i] = "t" + strconv.Itoa(i)
	}
	w := newWorkload(n, spread)
	s := mustStart(memstore.New(), trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		i, _ := strconv.Atoi(t.ID[1:])
		w.ran(i, time.Since(t.DueAt))
		return nil
	}))
	return ids, w, s
}

// workload is the core table's job list: n jobs due at random offsets over
// spread, with what was measured of them.
type workload struct {
	n          int
	spread     time.Duration
	offsets    []time.Duration
	starts     []int64 // start minus due time, ns
	handedLate []bool  // already due when scheduling returned
	executed   atomic.Int64
	done       chan struct{}

	begin   time.Time // when scheduling began: the jobs' due times count from it
	elapsed time.Duration
	// cpu0 is the process's processor time when scheduling began, and
	// cpu1 when the last job started.
	cpu0, cpu1 time.Duration
	m0, m1     runtime.MemStats
}

func newWorkload(n int, spread time.Duration) *workload {
	w := &workload{n: n, spread: spread, offsets: make([]time.Duration, n), starts: make([]int64, n),
		handedLate: make([]bool, n), done: make(chan struct{})}
	for i := range n {
		w.offsets[i] = time.Duration(rand.Int64N(int64(spread)))
	}
	return w
}

// scheduleAll hands every job to schedule from one goroutine, as fast as it
// goes, batch jobs [lo, hi) at a time, measuring the time and the
// allocations.
func (w *workload) scheduleAll(batch int, schedule func(lo, hi int)) {
	runtime.GC()
	runtime.ReadMemStats(&w.m0)
	w.cpu0 = cpuTime()
	w.begin = time.Now()
	for lo := 0; lo < w.n; lo += batch {
		hi := min(lo+batch, w.n)
		schedule(lo, hi)
		now := time.Now()
		for i := lo; i < hi; i++ {
			w.handedLate[i] = !now.Before(w.due(i))
		}
	}
	w.elapsed = time.Since(w.begin)
	runtime.ReadMemStats(&w.m1)
}

// due returns job i's due time; scheduling begins at w.begin.
func (w *workload) due(i int) time.Time { return w.begin.Add(w.offsets[i]) }

// ran records that job i started late after its due time.
func (w *workload) ran(i int, late time.Duration) {
	w.starts[i] = int64(late)
	if w.executed.Add(1) == int64(w.n) {
		w.cpu1 = cpuTime()
		close(w.done)
	}
}

// result waits for every job to run (or gives up a minute after the last
// was due) and summarises.
func (w *workload) result() coreResult {
	select {
	case <-w.done:
	case <-time.After(w.spread + time.Minute):
		log.Printf("core N=%d: only %d of %d executed after %v", w.n, w.executed.Load(), w.n, w.spread+time.Minute)
	}
	if timeline {
		w.printTimeline()
	}
	r := coreResult{
		nsPerOp:     float64(w.elapsed.Nanoseconds()) / float64(w.n),
		allocsPerOp: float64(w.m1.Mallocs-w.m0.Mallocs) / float64(w.n),
		executed:    int(w.executed.Load()),
		earliest:    time.Duration(1<<63 - 1),
	}
	if w.cpu1 > w.cpu0 { // cpu1 is set once every job started; both 0 where unknown
		r.cpuPerOp = (w.cpu1 - w.cpu0) / time.Duration(w.n)
	}
	for i := range w.n {
		if w.handedLate[i] {
			r.dueAtHandOver++
			continue
		}
		late := time.Duration(w.starts[i])
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

// measuredConfig is the Config of the schedulers the core and cron tables
// measure: 16 workers, and the -claim-ahead and -tick flags.
func measuredConfig() trigger.Config {
	return trigger.Config{Workers: 16, ClaimAhead: claimAhead, Tick: tick, Logger: quiet}
}

func mustStart(store trigger.Store, c trigger.Consumer) *trigger.Scheduler {
	s, err := trigger.New(store, c, measuredConfig())
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

// timeline is set by -timeline: print the lateness of each run by when its
// jobs were due, to see where the tail comes from.
var timeline bool

// printTimeline prints lateness quantiles per 500 ms of due time, with how
// many garbage collections ended a pause then.
func (w *workload) printTimeline() {
	const step = 500 * time.Millisecond
	buckets := make([]samples, int(w.spread/step)+1)
	gcs := make([]int, len(buckets))
	var st debug.GCStats
	debug.ReadGCStats(&st)
	for _, end := range st.PauseEnd {
		if d := end.Sub(w.begin); d >= 0 && d < w.spread {
			gcs[d/step]++
		}
	}
	for i := range w.n {
		if !w.handedLate[i] {
			b := int(w.offsets[i] / step)
			buckets[b] = append(buckets[b], time.Duration(w.starts[i]))
		}
	}
	fmt.Printf("  N=%d, scheduling took %v\n", w.n, w.elapsed.Round(time.Millisecond))
	for b, s := range buckets {
		if len(s) > 0 {
			fmt.Printf("    due %5v..: %7d  p50 %8s  p99 %8s  max %8s  gc %d\n", time.Duration(b)*step, len(s), dur(s.p(0.5)), dur(s.p(0.99)), dur(s.max()), gcs[b])
		}
	}
}

// cpuCell formats the processor time a trigger cost, or "-" if unknown.
func cpuCell(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", float64(d)/1e3)
}
