package trigger_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// bundle is what a scheduler test works with.
type bundle struct {
	sched *trigger.Scheduler
	store *memstore.Store
	runs  *recorder
}

// recorder is a consumer that records every run and delegates to fn.
type recorder struct {
	mu   sync.Mutex
	runs []runRecord
	fn   func(ctx context.Context, t *trigger.Trigger) error
}

type runRecord struct {
	id      string
	at      time.Time
	attempt int
	token   uint64
	trigger trigger.Trigger
}

func (r *recorder) Consume(ctx context.Context, t *trigger.Trigger) error {
	r.mu.Lock()
	r.runs = append(r.runs, runRecord{id: t.ID, at: time.Now(), attempt: t.Attempt, token: t.Token, trigger: *t})
	fn := r.fn
	r.mu.Unlock()
	if fn != nil {
		return fn(ctx, t)
	}
	return nil
}

func (r *recorder) of(id string) []runRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runRecord
	for _, x := range r.runs {
		if x.id == id {
			out = append(out, x)
		}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// setup starts a scheduler on a fresh memstore; call it inside a synctest
// bubble and stop with b.stop before the bubble ends.
func setup(t *testing.T, cfg trigger.Config, fn func(ctx context.Context, t *trigger.Trigger) error) *bundle {
	t.Helper()
	b := &bundle{store: memstore.New(), runs: &recorder{fn: fn}}
	b.sched = start(t, b.store, b.runs, cfg)
	return b
}

func start(t *testing.T, store trigger.Store, c trigger.Consumer, cfg trigger.Config) *trigger.Scheduler {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	s, err := trigger.New(store, c, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func (b *bundle) stop(t *testing.T) { stop(t, b.sched) }

func stop(t *testing.T, s *trigger.Scheduler) {
	t.Helper()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func (b *bundle) schedule(t *testing.T, tr trigger.Trigger) string {
	t.Helper()
	id, err := b.sched.Schedule(context.Background(), tr)
	if err != nil {
		t.Fatalf("Schedule(%+v): %v", tr, err)
	}
	return id
}

func (b *bundle) get(t *testing.T, id string) trigger.Trigger {
	t.Helper()
	tr, err := b.sched.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return tr
}

func TestScheduleRunsAtDueTimeNeverEarly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, nil)
		now := time.Now()
		dues := map[string]time.Time{}
		for i, d := range []time.Duration{0, time.Millisecond, 1500 * time.Microsecond, time.Second, 59 * time.Second, 90 * time.Second, 2 * time.Hour} {
			due := now.Add(d)
			dues[b.schedule(t, trigger.Trigger{ID: fmt.Sprint("t", i), DueAt: due})] = due
		}
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		for id, due := range dues {
			runs := b.runs.of(id)
			if len(runs) != 1 {
				t.Fatalf("trigger %s due %v ran %d times, want once", id, due.Sub(now), len(runs))
			}
			late := runs[0].at.Sub(due)
			if late < 0 {
				t.Errorf("trigger %s ran %v early", id, -late)
			}
			// Within the horizon a trigger is armed and fires within a
			// tick; beyond it the scan brings it in by its due time.
			if late > time.Millisecond {
				t.Errorf("trigger %s ran %v late, want within one 1ms tick", id, late)
			}
			if got := b.get(t, id); got.State != trigger.StateCompleted || got.Attempt != 1 {
				t.Errorf("trigger %s: state %v attempt %d, want completed after 1 attempt", id, got.State, got.Attempt)
			}
		}
		b.stop(t)
	})
}

// Triggers due apart start each at its due time with the default tick, and
// with a longer one together, at wake-ups a tenth of a tick apart: never
// early, and no later than that tenth.
func TestTickSetsHowOftenTheWheelWakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tick   time.Duration
		starts int // distinct start instants of the ten triggers
	}{
		{0, 10},                    // 100µs apart at least: each at its own due time
		{10 * time.Millisecond, 4}, // 1ms apart at least: due at 0, 0.3-0.9, 1.2-1.8, 2.1-2.7ms
	} {
		t.Run(fmt.Sprint("tick=", tc.tick), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, trigger.Config{Tick: tc.tick}, nil)
				first := time.Now().Add(time.Second)
				dues := map[string]time.Time{}
				for i := range 10 {
					due := first.Add(time.Duration(i) * 300 * time.Microsecond)
					dues[b.schedule(t, trigger.Trigger{ID: fmt.Sprint("t", i), DueAt: due})] = due
				}
				time.Sleep(2 * time.Second)
				synctest.Wait()
				grain := max(tc.tick, time.Millisecond) / 10
				starts := map[time.Time]bool{}
				for id, due := range dues {
					runs := b.runs.of(id)
					if len(runs) != 1 {
						t.Fatalf("trigger %s ran %d times, want once", id, len(runs))
					}
					if late := runs[0].at.Sub(due); late < 0 || late >= grain {
						t.Errorf("trigger %s started %v after its due time, want in [0, %v)", id, late, grain)
					}
					starts[runs[0].at] = true
				}
				if len(starts) != tc.starts {
					t.Errorf("the triggers started at %d instants, want %d", len(starts), tc.starts)
				}
				b.stop(t)
			})
		})
	}
}

// A consumer slower than the scan interval (and than the lease, thanks to
// heartbeats) runs once: the scan does not dispatch it again.
func TestSlowConsumerRunsOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{ScanInterval: time.Second, LeaseDuration: 3 * time.Second}, func(ctx context.Context, _ *trigger.Trigger) error {
			time.Sleep(time.Minute)
			return nil
		})
		// A second scheduler on the same store must not take it either.
		other := start(t, b.store, b.runs, trigger.Config{ScanInterval: time.Second, LeaseDuration: 3 * time.Second, Logger: quiet})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		time.Sleep(5 * time.Minute)
		if n := len(b.runs.of(id)); n != 1 {
			t.Fatalf("slow trigger ran %d times, want 1", n)
		}
		if got := b.get(t, id); got.State != trigger.StateCompleted {
			t.Fatalf("state %v, want completed", got.State)
		}
		b.stop(t)
		stop(t, other)
	})
}

// Fire racing the timer runs the trigger once.
func TestFireRacingTimerRunsOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, nil)
		var ids []string
		for i := range 50 {
			ids = append(ids, b.schedule(t, trigger.Trigger{DueAt: time.Now().Add(time.Second + time.Duration(i)*time.Microsecond)}))
		}
		time.Sleep(time.Second)
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				err := b.sched.Fire(context.Background(), id)
				if err != nil && !errors.Is(err, trigger.ErrClaimed) && !errors.Is(err, trigger.ErrInvalidState) {
					t.Errorf("Fire(%s): %v", id, err)
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Second)
		for _, id := range ids {
			if n := len(b.runs.of(id)); n != 1 {
				t.Errorf("trigger %s ran %d times, want 1", id, n)
			}
		}
		b.stop(t)
	})
}

func TestFireRunsBeforeDueAndManualTriggers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, nil)
		later := b.schedule(t, trigger.Trigger{DueAt: time.Now().Add(time.Hour)})
		manual := b.schedule(t, trigger.Trigger{Type: trigger.TypeManual})
		if got := b.get(t, manual); got.State != trigger.StateWaiting {
			t.Fatalf("manual trigger state %v, want waiting", got.State)
		}
		time.Sleep(10 * time.Minute)
		if b.runs.count() != 0 {
			t.Fatalf("%d runs before any Fire, want 0", b.runs.count())
		}
		for _, id := range []string{later, manual} {
			if err := b.sched.Fire(context.Background(), id); err != nil {
				t.Fatalf("Fire(%s): %v", id, err)
			}
		}
		synctest.Wait()
		for _, id := range []string{later, manual} {
			if n := len(b.runs.of(id)); n != 1 {
				t.Errorf("fired trigger %s ran %d times, want 1", id, n)
			}
		}
		if err := b.sched.Fire(context.Background(), later); !errors.Is(err, trigger.ErrInvalidState) {
			t.Errorf("Fire of a completed trigger: %v, want ErrInvalidState", err)
		}
		if err := b.sched.Fire(context.Background(), "nope"); !errors.Is(err, trigger.ErrNotFound) {
			t.Errorf("Fire of an unknown id: %v, want ErrNotFound", err)
		}
		b.stop(t)
	})
}

func TestFireWhileRunningIsRefused(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		b := setup(t, trigger.Config{}, func(ctx context.Context, _ *trigger.Trigger) error {
			<-release
			return nil
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		synctest.Wait()
		if err := b.sched.Fire(context.Background(), id); !errors.Is(err, trigger.ErrClaimed) {
			t.Errorf("Fire while running: %v, want ErrClaimed", err)
		}
		close(release)
		b.stop(t)
		if n := len(b.runs.of(id)); n != 1 {
			t.Errorf("ran %d times, want 1", n)
		}
	})
}

// A trigger fired while every worker is busy, then canceled before a
// worker takes it, never runs; the queue slot it took is given back.
func TestFireThenCancelBeforeItStarts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		b := setup(t, trigger.Config{Workers: 1, QueueLimits: map[string]int{"q": 1}}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.ID == "busy" {
				<-release
			}
			return nil
		})
		b.schedule(t, trigger.Trigger{ID: "busy", DueAt: time.Now()})
		synctest.Wait()
		id := b.schedule(t, trigger.Trigger{ID: "fired", Type: trigger.TypeManual, Queue: "q"}) // waits to be fired
		if err := b.sched.Fire(context.Background(), id); err != nil {
			t.Fatalf("Fire: %v", err)
		}
		if err := b.sched.Cancel(context.Background(), id); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		next := b.schedule(t, trigger.Trigger{ID: "next", Queue: "q", DueAt: time.Now()})
		close(release)
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(b.runs.of(id)); n != 0 {
			t.Errorf("the canceled trigger ran %d times, want never", n)
		}
		if got := b.get(t, id); got.State != trigger.StateCanceled {
			t.Errorf("state %v, want canceled", got.State)
		}
		if n := len(b.runs.of(next)); n != 1 {
			t.Errorf("the next trigger of its queue ran %d times, want once: the dropped run kept its slot", n)
		}
		b.stop(t)
	})
}

// A consumer error or panic leaves the trigger retrying with backoff and
// finally failed with its last error, never deleted.
func TestErrorsRetryThenFailAndKeepTheTrigger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fn   func(context.Context, *trigger.Trigger) error
		want string
	}{
		{"error", func(context.Context, *trigger.Trigger) error { return errors.New("boom") }, "boom"},
		{"panic", func(context.Context, *trigger.Trigger) error { panic("kaboom") }, "consumer panicked: kaboom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, trigger.Config{MaxAttempts: 4, RetryBase: time.Second, RetryMax: time.Minute}, tc.fn)
				id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
				synctest.Wait()
				if got := b.get(t, id); got.State != trigger.StateRetrying || !strings.Contains(got.LastError, tc.want) {
					t.Fatalf("after one failure: state %v, last error %q; want retrying with %q", got.State, got.LastError, tc.want)
				}
				time.Sleep(time.Hour)
				runs := b.runs.of(id)
				if len(runs) != 4 {
					t.Fatalf("ran %d times, want MaxAttempts = 4", len(runs))
				}
				for i := 1; i < len(runs); i++ {
					gap := runs[i].at.Sub(runs[i-1].at)
					base := time.Second << (i - 1)
					if gap < base*8/10 || gap > base*12/10+time.Millisecond {
						t.Errorf("gap before attempt %d is %v, want %v ± 20%%", i+1, gap, base)
					}
					if runs[i].attempt != i+1 {
						t.Errorf("run %d saw attempt %d", i+1, runs[i].attempt)
					}
				}
				got := b.get(t, id)
				if got.State != trigger.StateFailed || !strings.Contains(got.LastError, tc.want) {
					t.Fatalf("state %v, last error %q; want failed with %q", got.State, got.LastError, tc.want)
				}
				if tc.name == "panic" && !strings.Contains(got.LastError, "goroutine") {
					t.Errorf("panic error carries no stack: %q", got.LastError)
				}
				dead, err := b.sched.List(context.Background(), trigger.ListQuery{State: trigger.StateFailed, Limit: 10})
				if err != nil || len(dead) != 1 || dead[0].ID != id {
					t.Fatalf("List(failed) = %v, %v; want the failed trigger", dead, err)
				}
				// Retry by hand runs it again with fresh attempts.
				b.runs.fn = nil
				if err := b.sched.Retry(context.Background(), id); err != nil {
					t.Fatalf("Retry: %v", err)
				}
				synctest.Wait()
				if got := b.get(t, id); got.State != trigger.StateCompleted || got.Attempt != 1 {
					t.Fatalf("after Retry: state %v attempt %d, want completed at attempt 1", got.State, got.Attempt)
				}
				b.stop(t)
			})
		})
	}
}

// A full worker pool loses nothing: every trigger waits its turn.
func TestFullPoolLosesNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var inflight, peak atomic.Int32
		b := setup(t, trigger.Config{Workers: 2}, func(ctx context.Context, _ *trigger.Trigger) error {
			n := inflight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Second)
			inflight.Add(-1)
			return nil
		})
		const n = 100
		for i := range n {
			b.schedule(t, trigger.Trigger{DueAt: time.Now().Add(time.Duration(i%3) * time.Millisecond), Priority: i % 5})
		}
		time.Sleep(2 * time.Minute)
		if got := b.runs.count(); got != n {
			t.Fatalf("%d runs, want %d", got, n)
		}
		if p := peak.Load(); p != 2 {
			t.Errorf("peak concurrency %d, want the pool size 2", p)
		}
		b.stop(t)
	})
}

// Higher priority runs first among triggers due together.
func TestPriorityOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		b := setup(t, trigger.Config{Workers: 1}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.ID == "gate" {
				<-gate
			}
			return nil
		})
		b.schedule(t, trigger.Trigger{ID: "gate", DueAt: time.Now()})
		synctest.Wait()
		for i, p := range []int{1, 5, -3, 5, 0} {
			b.schedule(t, trigger.Trigger{ID: fmt.Sprintf("p%d-%d", p, i), DueAt: time.Now(), Priority: p})
		}
		close(gate)
		synctest.Wait()
		var order []string
		for _, r := range b.runs.runs[1:] {
			order = append(order, r.id)
		}
		want := "p5-1 p5-3 p1-0 p0-4 p-3-2"
		if got := strings.Join(order, " "); got != want {
			t.Errorf("run order %q, want %q", got, want)
		}
		b.stop(t)
	})
}

// Recovery at start runs what was due while nothing ran, and it cannot run
// a trigger before the consumer is there: the consumer is given to New.
func TestRecoveryAtStart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		now := time.Now()
		ctx := context.Background()
		for i := range 2500 { // more than one scan page
			due := now.Add(-time.Duration(i) * time.Second)
			if i%2 == 1 {
				due = now.Add(time.Duration(i) * time.Millisecond)
			}
			if err := store.Save(ctx, now, trigger.Trigger{ID: fmt.Sprint("r", i), Type: trigger.TypeNext, DueAt: due}); err != nil {
				t.Fatal(err)
			}
		}
		// A trigger claimed by a node that died: claimable once its lease ends.
		if err := store.Save(ctx, now, trigger.Trigger{ID: "orphan", Type: trigger.TypeNext, DueAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Claim(ctx, "orphan", trigger.Claim{Owner: "dead", Now: now, Until: now.Add(30 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		s, err := trigger.New(store, rec, trigger.Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // nothing runs before Start
		if rec.count() != 0 {
			t.Fatalf("%d runs before Start", rec.count())
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		if got := rec.count(); got != 2501 {
			t.Fatalf("%d runs after recovery, want 2501", got)
		}
		if r := rec.of("orphan"); len(r) != 1 || !r[0].trigger.Recovered || r[0].attempt != 2 {
			t.Errorf("orphan runs %+v, want one recovered run at attempt 2", r)
		}
		stop(t, s)
	})
}

// Two schedulers on one store run every trigger exactly once.
func TestTwoSchedulersShareAStore(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		rec := &recorder{}
		a := start(t, store, rec, trigger.Config{ScanInterval: time.Second})
		b := start(t, store, rec, trigger.Config{ScanInterval: time.Second})
		const n = 400
		for i := range n {
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, err := s.Schedule(context.Background(), trigger.Trigger{ID: fmt.Sprint("x", i), DueAt: time.Now().Add(time.Duration(i) * 100 * time.Millisecond)}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Minute)
		for i := range n {
			if runs := rec.of(fmt.Sprint("x", i)); len(runs) != 1 {
				t.Fatalf("x%d ran %d times, want 1", i, len(runs))
			}
		}
		stop(t, a)
		stop(t, b)
	})
}

// A node that dies mid-run (stops heartbeating) loses its lease; another
// node recovers the trigger, and the dead node's late outcome is refused.
func TestLeaseExpiryHandsOverAndFences(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		ctx := context.Background()
		now := time.Now()
		if err := store.Save(ctx, now, trigger.Trigger{ID: "job", Type: trigger.TypeNext, DueAt: now}); err != nil {
			t.Fatal(err)
		}
		// The "dead" node claims it and never heartbeats.
		dead, err := store.Claim(ctx, "job", trigger.Claim{Owner: "dead", Now: now, Until: now.Add(10 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		s := start(t, store, rec, trigger.Config{ScanInterval: time.Second})
		time.Sleep(9 * time.Second)
		if rec.count() != 0 {
			t.Fatal("ran while another node held a live lease")
		}
		time.Sleep(5 * time.Second)
		runs := rec.of("job")
		if len(runs) != 1 || !runs[0].trigger.Recovered || runs[0].token <= dead.Token {
			t.Fatalf("runs %+v; want one recovered run with a token above %d", runs, dead.Token)
		}
		err = store.Finish(ctx, "job", dead.Token, trigger.Outcome{Kind: trigger.OutcomeFail, Now: time.Now(), Error: "late"})
		if !errors.Is(err, trigger.ErrLeaseLost) {
			t.Fatalf("stale owner's Finish: %v, want ErrLeaseLost", err)
		}
		if got, _ := store.Get(ctx, "job"); got.State != trigger.StateCompleted {
			t.Fatalf("state %v after the stale write, want completed", got.State)
		}
		stop(t, s)
	})
}

func TestDirectives(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var snoozed atomic.Bool
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			switch tr.NodeID {
			case "complete":
				return trigger.Complete(
					trigger.Trigger{ID: "next-1", NodeID: "leaf", DueAt: time.Now()},
					trigger.Trigger{ID: "next-2", NodeID: "leaf", DueAt: time.Now().Add(time.Minute), Payload: trigger.Payload{"k": "v"}},
				)
			case "retry-after":
				if tr.Attempt == 1 {
					return trigger.RetryAfter(42*time.Second, errors.New("later"))
				}
			case "fail":
				return trigger.Fail(errors.New("no hope"))
			case "snooze":
				if !snoozed.Swap(true) {
					return trigger.Snooze(10 * time.Second)
				}
			case "reschedule":
				if tr.Iteration < 3 {
					return trigger.Reschedule(time.Now().Add(time.Second), trigger.Payload{"step": float64(tr.Iteration + 1)})
				}
			}
			return nil
		})
		for _, node := range []string{"complete", "retry-after", "fail", "snooze", "reschedule"} {
			b.schedule(t, trigger.Trigger{ID: node, NodeID: node, InstanceID: "inst-" + node, DueAt: time.Now()})
		}
		time.Sleep(5 * time.Minute)

		if got := b.get(t, "next-2"); got.InstanceID != "inst-complete" || got.Payload["k"] != "v" || got.State != trigger.StateCompleted {
			t.Errorf("follow-up next-2 = %+v; want completed, in the parent's instance, with its payload", got)
		}
		if r := b.runs.of("next-1"); len(r) != 1 {
			t.Errorf("follow-up next-1 ran %d times", len(r))
		}
		if r := b.runs.of("retry-after"); len(r) != 2 || r[1].at.Sub(r[0].at) != 42*time.Second {
			t.Errorf("retry-after runs %v; want 2, 42s apart", r)
		}
		if got := b.get(t, "fail"); got.State != trigger.StateFailed || got.LastError != "no hope" || len(b.runs.of("fail")) != 1 {
			t.Errorf("fail: %+v; want failed after one run with its error", got)
		}
		if r := b.runs.of("snooze"); len(r) != 2 || r[1].attempt != 1 || r[1].at.Sub(r[0].at) != 10*time.Second {
			t.Errorf("snooze: %d runs; want 2, 10s apart, both at attempt 1", len(r))
		}
		r := b.runs.of("reschedule")
		if len(r) != 4 || r[3].trigger.Payload["step"] != float64(3) || r[3].attempt != 1 {
			t.Errorf("reschedule runs %d (last %+v); want 4, the last with step 3 at attempt 1", len(r), r[len(r)-1].trigger)
		}
		b.stop(t)
	})
}

func TestFollowUpWithTakenIDFailsTheTrigger(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.ID == "parent" {
				return trigger.Complete(trigger.Trigger{ID: "taken", DueAt: time.Now()})
			}
			return nil
		})
		b.schedule(t, trigger.Trigger{ID: "taken", DueAt: time.Now().Add(time.Hour)})
		b.schedule(t, trigger.Trigger{ID: "parent", DueAt: time.Now()})
		synctest.Wait()
		got := b.get(t, "parent")
		if got.State != trigger.StateFailed || !strings.Contains(got.LastError, "outcome refused") {
			t.Errorf("parent: state %v, error %q; want failed with the refusal", got.State, got.LastError)
		}
		b.stop(t)
	})
}

func TestRescheduleOutOfRangeFailsTheTrigger(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			return trigger.Reschedule(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), nil)
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateFailed || !strings.Contains(got.LastError, "outcome refused") {
			t.Errorf("state %v, error %q; want failed with the refusal", got.State, got.LastError)
		}
		if n := len(b.runs.of(id)); n != 1 {
			t.Errorf("ran %d times, want 1", n)
		}
		b.stop(t)
	})
}

func TestContextCarriesTheRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var seen trigger.Trigger
		var attrs int
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			seen, _ = trigger.FromContext(ctx)
			attrs = len(trigger.LogAttrs(ctx))
			return nil
		})
		b.schedule(t, trigger.Trigger{ID: "ctx", NodeID: "n1", DueAt: time.Now()})
		synctest.Wait()
		if seen.ID != "ctx" || seen.NodeID != "n1" || seen.Attempt != 1 || seen.Token == 0 || seen.Owner != b.sched.NodeID() {
			t.Errorf("FromContext = %+v", seen)
		}
		if attrs != 4 {
			t.Errorf("LogAttrs gave %d attributes, want 4", attrs)
		}
		if _, ok := trigger.FromContext(context.Background()); ok {
			t.Error("FromContext outside a run reported ok")
		}
		b.stop(t)
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.ID == "running" {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		armed := b.schedule(t, trigger.Trigger{DueAt: time.Now().Add(time.Second)})
		running := b.schedule(t, trigger.Trigger{ID: "running", DueAt: time.Now()})
		synctest.Wait()
		for _, id := range []string{armed, running} {
			if err := b.sched.Cancel(context.Background(), id); err != nil {
				t.Fatalf("Cancel(%s): %v", id, err)
			}
		}
		time.Sleep(time.Minute)
		if n := len(b.runs.of(armed)); n != 0 {
			t.Errorf("canceled trigger ran %d times", n)
		}
		for _, id := range []string{armed, running} {
			if got := b.get(t, id); got.State != trigger.StateCanceled {
				t.Errorf("%s: state %v, want canceled", id, got.State)
			}
		}
		if err := b.sched.Cancel(context.Background(), armed); err != nil {
			t.Errorf("second Cancel: %v, want nil", err)
		}
		b.stop(t)
	})
}

// Stop lets a running consumer finish and records its outcome.
func TestStopIsGraceful(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			time.Sleep(10 * time.Second)
			return nil
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		later := b.schedule(t, trigger.Trigger{DueAt: time.Now().Add(time.Minute)})
		synctest.Wait()
		start := time.Now()
		b.stop(t)
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("Stop returned after %v, want after the 10s run", waited)
		}
		if got := b.get(t, id); got.State != trigger.StateCompleted {
			t.Errorf("running trigger: state %v after Stop, want completed", got.State)
		}
		if got := b.get(t, later); got.State != trigger.StateScheduled {
			t.Errorf("armed trigger: state %v after Stop, want scheduled", got.State)
		}
		b.stop(t) // idempotent
		if _, err := b.sched.Schedule(context.Background(), trigger.Trigger{DueAt: time.Now()}); !errors.Is(err, trigger.ErrStopped) {
			t.Errorf("Schedule after Stop: %v, want ErrStopped", err)
		}
		if err := b.sched.Start(context.Background()); !errors.Is(err, trigger.ErrStopped) {
			t.Errorf("Start after Stop: %v, want ErrStopped", err)
		}
	})
}

// When Stop's context ends first, runs are canceled and given back without
// using an attempt.
func TestStopDeadlineCancelsRuns(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			<-ctx.Done()
			return ctx.Err()
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := b.sched.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want DeadlineExceeded", err)
		}
		<-b.sched.Stopped()
		got := b.get(t, id)
		if got.State != trigger.StateScheduled || got.Attempt != 0 {
			t.Errorf("state %v attempt %d; want scheduled again with no attempt used", got.State, got.Attempt)
		}
	})
}

func TestStopNeverStarted(t *testing.T) {
	t.Parallel()
	s, err := trigger.New(memstore.New(), &recorder{}, trigger.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Fire(context.Background(), "x"); !errors.Is(err, trigger.ErrNotStarted) {
		t.Errorf("Fire before Start: %v, want ErrNotStarted", err)
	}
	for range 2 {
		if err := s.Stop(context.Background()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	<-s.Stopped()
}

// A lost lease (here: the trigger canceled elsewhere) stops the run at the
// next heartbeat.
func TestHeartbeatNoticesLostLease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		stoppedBy := make(chan error, 1)
		b := setup(t, trigger.Config{LeaseDuration: 3 * time.Second}, func(ctx context.Context, tr *trigger.Trigger) error {
			<-ctx.Done()
			stoppedBy <- context.Cause(ctx)
			return ctx.Err()
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		synctest.Wait()
		// Cancel in the store directly, as another node would.
		if err := b.store.Cancel(context.Background(), id, time.Now()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := <-stoppedBy; !errors.Is(err, trigger.ErrLeaseLost) {
			t.Errorf("run stopped by %v, want ErrLeaseLost", err)
		}
		if waited := time.Since(start); waited > time.Second {
			t.Errorf("run stopped %v after its lease was lost, want within one 1s heartbeat", waited)
		}
		b.stop(t)
	})
}

// A heartbeat whose extension is refused because the run ended meanwhile
// (its outcome recorded between reading the runs and extending them, as
// happens to thousands of runs a heartbeat at a hundred thousand runs a
// second) stops nothing and warns of nothing.
func TestHeartbeatIgnoresRunEndedMeanwhile(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &slowExtend{Store: memstore.New(), finished: make(chan struct{})}
		warns := &warnings{}
		c := &recorder{fn: func(ctx context.Context, tr *trigger.Trigger) error {
			time.Sleep(1500 * time.Millisecond) // a heartbeat at 1s reads the run
			return nil
		}}
		s := start(t, store, c, trigger.Config{LeaseDuration: 3 * time.Second, Logger: slog.New(warns)})
		id, err := s.Schedule(context.Background(), trigger.Trigger{DueAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		stop(t, s)
		if store.extends.Load() == 0 {
			t.Fatal("no heartbeat extended the run: the test did not test anything")
		}
		if got, err := store.Get(context.Background(), id); err != nil || got.State != trigger.StateCompleted {
			t.Fatalf("trigger %+v (%v), want completed", got, err)
		}
		if w := warns.all(); len(w) > 0 {
			t.Errorf("warnings %q, want none: the run ended normally", w)
		}
	})
}

// slowExtend is a store whose Extend waits until a Finish has been
// recorded, as if the heartbeat had read the runs just before that.
type slowExtend struct {
	trigger.Store
	finished chan struct{}
	once     sync.Once
	extends  atomic.Int64
}

func (s *slowExtend) Extend(ctx context.Context, id string, token uint64, now, until time.Time) error {
	s.extends.Add(1)
	<-s.finished
	return s.Store.Extend(ctx, id, token, time.Now(), time.Now().Add(until.Sub(now)))
}

func (s *slowExtend) Finish(ctx context.Context, id string, token uint64, o trigger.Outcome) error {
	defer s.once.Do(func() { close(s.finished) })
	return s.Store.Finish(ctx, id, token, o)
}

// warnings is a slog.Handler that keeps the messages of warnings and
// errors.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, r.Message)
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	c := &recorder{}
	store := memstore.New()
	for _, tc := range []struct {
		name     string
		store    trigger.Store
		consumer trigger.Consumer
		cfg      trigger.Config
		want     string
	}{
		{"nil store", nil, c, trigger.Config{}, "nil Store"},
		{"nil consumer", store, nil, trigger.Config{}, "nil Consumer"},
		{"negative workers", store, c, trigger.Config{Workers: -1}, "Workers"},
		{"negative scan interval", store, c, trigger.Config{ScanInterval: -time.Second}, "ScanInterval"},
		{"tick too fine", store, c, trigger.Config{Tick: time.Microsecond}, "Tick"},
		{"tick too coarse", store, c, trigger.Config{Tick: time.Minute}, "Tick"},
		{"horizon below two scans", store, c, trigger.Config{ScanInterval: time.Minute, Horizon: time.Minute}, "Horizon"},
		{"heartbeat not below lease", store, c, trigger.Config{LeaseDuration: time.Second, HeartbeatInterval: time.Second}, "HeartbeatInterval"},
		{"negative lease", store, c, trigger.Config{LeaseDuration: -time.Second}, "LeaseDuration"},
		{"negative attempts", store, c, trigger.Config{MaxAttempts: -1}, "MaxAttempts"},
		{"base above max", store, c, trigger.Config{RetryBase: time.Hour, RetryMax: time.Second}, "RetryBase"},
		{"factor below one", store, c, trigger.Config{RetryFactor: 0.5}, "RetryFactor"},
		{"claim ahead not below lease", store, c, trigger.Config{LeaseDuration: time.Second, ClaimAhead: time.Second}, "ClaimAhead"},
		{"negative run timeout", store, c, trigger.Config{RunTimeout: -1}, "RunTimeout"},
		{"negative scan limit", store, c, trigger.Config{ScanLimit: -1}, "ScanLimit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := trigger.New(tc.store, tc.consumer, tc.cfg)
			if s != nil || !errors.Is(err, trigger.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want ErrInvalid naming %q", s, err, tc.want)
			}
		})
	}
}

// Bad input to every public method gets a clear error and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, nil)
		ctx := context.Background()
		now := time.Now()
		for _, tc := range []struct {
			name string
			tr   trigger.Trigger
		}{
			{"unknown type", trigger.Trigger{ID: "bad", Type: 99, DueAt: now}},
			{"no due time for a NEXT trigger", trigger.Trigger{ID: "bad"}},
			{"priority out of range", trigger.Trigger{ID: "bad", DueAt: now, Priority: trigger.MaxPriority + 1}},
			{"negative max attempts", trigger.Trigger{ID: "bad", DueAt: now, MaxAttempts: -1}},
			{"due time past 2262", trigger.Trigger{ID: "bad", DueAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{"due time before 1970", trigger.Trigger{ID: "bad", DueAt: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{"unserialisable payload", trigger.Trigger{ID: "bad", DueAt: now, Payload: trigger.Payload{"ch": make(chan int)}}},
			{"unknown misfire policy", trigger.Trigger{ID: "bad", DueAt: now, Misfire: 42}},
			{"id too long", trigger.Trigger{ID: strings.Repeat("x", 300), DueAt: now}},
		} {
			if _, err := b.sched.Schedule(ctx, tc.tr); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("Schedule with %s: %v, want ErrInvalid", tc.name, err)
			}
			if _, err := b.sched.ScheduleBatch(ctx, []trigger.Trigger{{ID: "good", DueAt: now}, tc.tr}); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("ScheduleBatch with %s: %v, want ErrInvalid", tc.name, err)
			}
		}
		if _, err := b.sched.ScheduleBatch(ctx, nil); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("ScheduleBatch(nil): %v, want ErrInvalid", err)
		}
		for name, call := range map[string]func() error{
			"List":   func() error { _, err := b.sched.List(ctx, trigger.ListQuery{State: trigger.StateFailed}); return err },
			"Get":    func() error { _, err := b.sched.Get(ctx, ""); return err },
			"Fire":   func() error { return b.sched.Fire(ctx, "") },
			"Cancel": func() error { return b.sched.Cancel(ctx, "") },
			"Retry":  func() error { return b.sched.Retry(ctx, "") },
		} {
			if err := call(); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("%s with an empty id or limit: %v, want ErrInvalid", name, err)
			}
		}
		b.schedule(t, trigger.Trigger{ID: "dup", DueAt: now.Add(time.Hour)})
		if _, err := b.sched.Schedule(ctx, trigger.Trigger{ID: "dup", DueAt: now}); !errors.Is(err, trigger.ErrDuplicate) {
			t.Errorf("Schedule of a taken id: %v, want ErrDuplicate", err)
		}
		if err := b.sched.Retry(ctx, "dup"); !errors.Is(err, trigger.ErrInvalidState) {
			t.Errorf("Retry of a scheduled trigger: %v, want ErrInvalidState", err)
		}
		for _, id := range []string{"bad", "good", strings.Repeat("x", 300)} {
			if _, err := b.sched.Get(ctx, id); !errors.Is(err, trigger.ErrNotFound) {
				t.Errorf("Get(%.10q) after refused input: %v, want ErrNotFound", id, err)
			}
		}
		if got := b.get(t, "dup"); !got.DueAt.Equal(now.Add(time.Hour)) {
			t.Errorf("refused duplicate changed the stored trigger: due %v", got.DueAt)
		}
		time.Sleep(time.Minute)
		if n := b.runs.count(); n != 0 {
			t.Errorf("%d runs after only refused input", n)
		}
		b.stop(t)
	})
}

// failingDue is a store whose first Due calls fail.
type failingDue struct {
	trigger.Store
	failures atomic.Int32
}

func (f *failingDue) Due(ctx context.Context, q trigger.DueQuery) ([]trigger.Ref, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("store unavailable")
	}
	return f.Store.Due(ctx, q)
}

// A scan that fails leaves its window to the next scan: triggers in it
// still fire on time, not only once the overdue pass finds them late.
func TestFailedScanIsCoveredAgain(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &failingDue{Store: memstore.New()}
		store.failures.Store(2) // both passes of the recovery scan
		rec := &recorder{}
		s, err := trigger.New(store, rec, trigger.Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		// Between two scans, so that only the window pass can fire it on time.
		due := time.Now().Add(32 * time.Second)
		if _, err := s.Schedule(context.Background(), trigger.Trigger{ID: "x", DueAt: due}); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		runs := rec.of("x")
		if len(runs) != 1 {
			t.Fatalf("ran %d times, want 1", len(runs))
		}
		if late := runs[0].at.Sub(due); late < 0 || late > time.Millisecond {
			t.Errorf("ran %v after its due time, want within a 1ms tick", late)
		}
		stop(t, s)
	})
}

// On the real clock, where the wheel driver sleeps on a timerfd, a trigger
// scheduled earlier than everything armed wakes the driver, however the
// poke falls against the driver setting its alarm: each runs within a
// second of its due time (a lost poke would leave it to the next scan or
// to the other trigger, due in 30 seconds).
func TestEarlierTriggerWakesDriverOnRealClock(t *testing.T) {
	ran := make(chan string, 1)
	s := start(t, memstore.New(), trigger.ConsumerFunc(func(_ context.Context, tr *trigger.Trigger) error {
		ran <- tr.ID
		return nil
	}), trigger.Config{ScanInterval: time.Minute})
	defer stop(t, s)
	ctx := context.Background()
	if _, err := s.Schedule(ctx, trigger.Trigger{ID: "far", DueAt: time.Now().Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		id := fmt.Sprint("near-", i)
		if _, err := s.Schedule(ctx, trigger.Trigger{ID: id, DueAt: time.Now().Add(time.Duration(i%7) * 300 * time.Microsecond)}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ran:
			if got != id {
				t.Fatalf("ran %s, want %s", got, id)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s did not run within a second of its due time", id)
		}
	}
}
