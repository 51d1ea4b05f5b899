package trigger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // the DST tests need America/New_York wherever they run

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// A synctest bubble starts at 2000-01-01 00:00 UTC. In 2000 New York went
// from 02:00 EST to 03:00 EDT on April 2 and from 02:00 EDT back to 01:00
// EST on October 29.

// recurringConfig keeps long fake-time runs cheap: few scans and heartbeats.
var recurringConfig = trigger.Config{ScanInterval: time.Minute, LeaseDuration: 10 * time.Minute}

// occRun is one run of a recurring trigger, as its consumer saw it.
type occRun struct {
	id      string
	node    string
	start   time.Time
	end     time.Time
	trigger trigger.Trigger
	occ     trigger.Occurrence
	hasOcc  bool
}

// occRecorder is a consumer that records runs with their occurrence.
type occRecorder struct {
	node string
	log  *occLog
	fn   func(ctx context.Context, t *trigger.Trigger) error
}

type occLog struct {
	mu   sync.Mutex
	runs []occRun
}

func (r *occRecorder) Consume(ctx context.Context, t *trigger.Trigger) error {
	occ, ok := trigger.OccurrenceFromContext(ctx)
	run := occRun{id: t.ID, node: r.node, start: time.Now(), trigger: *t, occ: occ, hasOcc: ok}
	var err error
	if r.fn != nil {
		err = r.fn(ctx, t)
	}
	run.end = time.Now()
	r.log.mu.Lock()
	r.log.runs = append(r.log.runs, run)
	r.log.mu.Unlock()
	return err
}

func (l *occLog) of(id string) []occRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []occRun
	for _, r := range l.runs {
		if r.id == id {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b occRun) int { return a.start.Compare(b.start) })
	return out
}

func startRecurring(t *testing.T, store trigger.Store, log *occLog, node string, cfg trigger.Config, fn func(context.Context, *trigger.Trigger) error) *trigger.Scheduler {
	t.Helper()
	cfg.NodeID = node
	return start(t, store, &occRecorder{node: node, log: log, fn: fn}, cfg)
}

func register(t *testing.T, s *trigger.Scheduler, tr trigger.Trigger, want trigger.RegisterResult) {
	t.Helper()
	got, err := s.Register(context.Background(), tr)
	if err != nil {
		t.Fatalf("Register(%s %q): %v", tr.ID, tr.Cron, err)
	}
	if got != want {
		t.Fatalf("Register(%s %q) = %s, want %s", tr.ID, tr.Cron, got, want)
	}
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// wallTimes returns when each run started, on the zone's clock, and checks
// that each run started on time (within the 1ms tick) for the occurrence it
// stands for.
func wallTimes(t *testing.T, runs []occRun, loc *time.Location) []string {
	t.Helper()
	var out []string
	for _, r := range runs {
		if late := r.start.Sub(r.occ.Scheduled); !r.hasOcc || late < 0 || late > time.Millisecond || r.occ.CatchUp {
			t.Errorf("run at %v stands for %+v (ok %v): want an on-time occurrence", r.start, r.occ, r.hasOcc)
		}
		out = append(out, r.start.In(loc).Truncate(time.Second).Format("01-02 15:04 MST"))
	}
	return out
}

func TestCronDSTSpringForward(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ny := mustZone(t, "America/New_York")
		sleepUntil(time.Date(2000, 3, 31, 12, 0, 0, 0, ny))
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, nil)
		register(t, s, trigger.Trigger{ID: "daily-0230", Cron: "30 2 * * *", TimeZone: "America/New_York"}, trigger.RegisterCreated)
		register(t, s, trigger.Trigger{ID: "daily-0300", Cron: "CRON_TZ=America/New_York 0 3 * * *"}, trigger.RegisterCreated)
		register(t, s, trigger.Trigger{ID: "hourly", Cron: "0 * * * *", TimeZone: "America/New_York"}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 4, 3, 12, 30, 0, 0, ny))
		stop(t, s)

		for id, want := range map[string][]string{
			// 02:30 does not exist on April 2: it runs when clocks jump.
			"daily-0230": {"04-01 02:30 EST", "04-02 03:00 EDT", "04-03 02:30 EDT"},
			"daily-0300": {"04-01 03:00 EST", "04-02 03:00 EDT", "04-03 03:00 EDT"},
		} {
			if got := wallTimes(t, log.of(id), ny); !slices.Equal(got, want) {
				t.Errorf("%s ran at %v, want %v", id, got, want)
			}
		}
		var around []string
		for _, w := range wallTimes(t, log.of("hourly"), ny) {
			if strings.HasPrefix(w, "04-02 0") && w < "04-02 05" {
				around = append(around, w)
			}
		}
		if want := []string{"04-02 00:00 EST", "04-02 01:00 EST", "04-02 03:00 EDT", "04-02 04:00 EDT"}; !slices.Equal(around, want) {
			t.Errorf("hourly around the jump ran at %v, want %v", around, want)
		}
		if n := len(log.of("hourly")); n != 71 { // 13:00 on the 31st to 12:00 on the 3rd: 72 hours, one of them skipped
			t.Errorf("hourly ran %d times, want 71", n)
		}
	})
}

func TestCronDSTFallBack(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ny := mustZone(t, "America/New_York")
		sleepUntil(time.Date(2000, 10, 27, 12, 0, 0, 0, ny))
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, nil)
		register(t, s, trigger.Trigger{ID: "daily-0130", Cron: "30 1 * * *", TimeZone: "America/New_York"}, trigger.RegisterCreated)
		register(t, s, trigger.Trigger{ID: "hourly", Cron: "0 * * * *", TimeZone: "America/New_York"}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 10, 30, 12, 30, 0, 0, ny))
		stop(t, s)

		// 01:30 happens twice on October 29: it runs at the first.
		if got, want := wallTimes(t, log.of("daily-0130"), ny), []string{"10-28 01:30 EDT", "10-29 01:30 EDT", "10-30 01:30 EST"}; !slices.Equal(got, want) {
			t.Errorf("daily at 01:30 ran at %v, want %v", got, want)
		}
		// An hourly schedule follows real time: both 01:00s.
		var around []string
		for _, w := range wallTimes(t, log.of("hourly"), ny) {
			if strings.HasPrefix(w, "10-29 0") && w < "10-29 03" {
				around = append(around, w)
			}
		}
		if want := []string{"10-29 00:00 EDT", "10-29 01:00 EDT", "10-29 01:00 EST", "10-29 02:00 EST"}; !slices.Equal(around, want) {
			t.Errorf("hourly around the change ran at %v, want %v", around, want)
		}
		if n := len(log.of("hourly")); n != 73 { // 13:00 on the 27th to 12:00 on the 30th: 72 hours, one repeated
			t.Errorf("hourly ran %d times, want 73", n)
		}
	})
}

// A scheduler stopped for three days, and another started on the same
// store: each misfire policy does what it says.
func TestCronMisfireAfterThreeDays(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		policy trigger.MisfirePolicy // of the trigger
		cfg    trigger.Config        // of the second scheduler
		// catchUps are the hours (after the last on-time run) that the
		// catch-up runs stand for, in order.
		catchUps []int
	}{
		{"fire once (the default)", 0, trigger.Config{}, []int{1}},
		{"fire once (the trigger's)", trigger.MisfireFireOnce, trigger.Config{Misfire: trigger.MisfireSkip}, []int{1}},
		{"skip", trigger.MisfireSkip, trigger.Config{}, nil},
		{"skip (the scheduler's default)", 0, trigger.Config{Misfire: trigger.MisfireSkip}, nil},
		{"fire all, capped at 5", trigger.MisfireFireAll, trigger.Config{MisfireCap: 5}, []int{68, 69, 70, 71, 72}},
		{"fire all, under the cap", trigger.MisfireFireAll, trigger.Config{MisfireCap: 100}, hours(1, 72)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				store, log := memstore.New(), &occLog{}
				cfg := recurringConfig
				a := startRecurring(t, store, log, "a", cfg, nil)
				register(t, a, trigger.Trigger{ID: "hourly", Cron: "@hourly", Misfire: c.policy}, trigger.RegisterCreated)
				sleepUntil(time.Date(2000, 1, 1, 2, 30, 0, 0, time.UTC)) // runs at 1:00 and 2:00
				stop(t, a)
				last := time.Date(2000, 1, 1, 2, 0, 0, 0, time.UTC)

				sleepUntil(last.Add(72*time.Hour + 30*time.Minute)) // three days later, nothing running
				restart := time.Now()
				cfg.Misfire, cfg.MisfireCap = c.cfg.Misfire, c.cfg.MisfireCap
				b := startRecurring(t, store, log, "b", cfg, nil)
				// Every replica registers at start: the same definition
				// changes nothing, the missed occurrences stay missed.
				register(t, b, trigger.Trigger{ID: "hourly", Cron: "@hourly", Misfire: c.policy}, trigger.RegisterUnchanged)
				sleepUntil(restart.Add(2 * time.Hour))
				stop(t, b)

				runs := log.of("hourly")
				if len(runs) < 2 || runs[0].node != "a" || runs[1].node != "a" || !runs[1].occ.Scheduled.Equal(last) {
					t.Fatalf("first scheduler's runs: %+v", runs)
				}
				var catchUps []int
				var onTime []time.Time
				for _, r := range runs[2:] {
					switch {
					case r.occ.CatchUp:
						if r.start.Sub(restart) > time.Minute {
							t.Errorf("catch-up run at %v, long after the restart", r.start)
						}
						catchUps = append(catchUps, int(r.occ.Scheduled.Sub(last)/time.Hour))
					default:
						onTime = append(onTime, r.occ.Scheduled)
						if late := r.start.Sub(r.occ.Scheduled); late < 0 || late > time.Millisecond {
							t.Errorf("regular run for %v started %v late", r.occ.Scheduled, late)
						}
					}
				}
				if !slices.Equal(catchUps, c.catchUps) {
					t.Errorf("catch-up runs stand for hours %v after the last run, want %v", catchUps, c.catchUps)
				}
				// Then the schedule goes on as before: 75:00 and 76:00.
				wantOnTime := []time.Time{last.Add(73 * time.Hour), last.Add(74 * time.Hour)}
				if !slices.EqualFunc(onTime, wantOnTime, time.Time.Equal) {
					t.Errorf("regular runs after the restart stand for %v, want %v", onTime, wantOnTime)
				}
			})
		})
	}
}

func hours(from, to int) []int {
	var out []int
	for h := from; h <= to; h++ {
		out = append(out, h)
	}
	return out
}

// A restart within the grace window is not a misfire: the late occurrence
// runs as an ordinary one.
func TestCronLateWithinGrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		a := startRecurring(t, store, log, "a", recurringConfig, nil)
		register(t, a, trigger.Trigger{ID: "hourly", Cron: "@hourly", Misfire: trigger.MisfireSkip}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 1, 1, 0, 59, 0, 0, time.UTC))
		stop(t, a)
		sleepUntil(time.Date(2000, 1, 1, 1, 0, 40, 0, time.UTC)) // 40s late, grace 1m
		b := startRecurring(t, store, log, "b", recurringConfig, nil)
		synctest.Wait()
		stop(t, b)
		runs := log.of("hourly")
		if len(runs) != 1 || runs[0].occ.CatchUp || !runs[0].occ.Scheduled.Equal(time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)) {
			t.Fatalf("runs %+v; want the 1:00 occurrence, run 40s late, not as a catch-up", runs)
		}
	})
}

// Two schedulers share a store, both register the same trigger, and every
// occurrence of 1,000 runs once.
func TestCronTwoSchedulersFireEachOccurrenceOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		slow := func(ctx context.Context, t *trigger.Trigger) error {
			time.Sleep(time.Duration(t.Iteration%7) * 100 * time.Millisecond) // runs overlap the other node's claims
			return nil
		}
		// A horizon shorter than the period makes both schedulers' scans
		// arm every occurrence, so that they race for each claim (with a
		// long horizon, the node that ran an occurrence arms the next and
		// the other only steps in when it is late).
		cfg := trigger.Config{ScanInterval: time.Second, Horizon: 2 * time.Second, LeaseDuration: 10 * time.Second}
		a := startRecurring(t, store, log, "a", cfg, slow)
		b := startRecurring(t, store, log, "b", cfg, slow)
		first := time.Now().Truncate(5 * time.Second).Add(5 * time.Second)
		register(t, a, trigger.Trigger{ID: "every-5s", Cron: "*/5 * * * * *"}, trigger.RegisterCreated)
		register(t, b, trigger.Trigger{ID: "every-5s", Cron: "*/5 * * * * *"}, trigger.RegisterUnchanged)
		sleepUntil(first.Add(999*5*time.Second + 2500*time.Millisecond))
		stop(t, a)
		stop(t, b)

		runs := log.of("every-5s")
		if len(runs) != 1000 {
			t.Errorf("%d runs over 1,000 occurrences", len(runs))
		}
		seen := map[int64]int{}
		nodes := map[string]int{}
		for _, r := range runs {
			seen[r.occ.Scheduled.UnixNano()]++
			nodes[r.node]++
			if r.occ.CatchUp {
				t.Errorf("occurrence %v ran as a catch-up", r.occ.Scheduled)
			}
		}
		for i := range 1000 {
			if at := first.Add(time.Duration(i) * 5 * time.Second); seen[at.UnixNano()] != 1 {
				t.Fatalf("occurrence %d (%v) ran %d times", i, at, seen[at.UnixNano()])
			}
		}
		if nodes["a"] == 0 || nodes["b"] == 0 {
			t.Errorf("runs per node %v: both should have taken some", nodes)
		}
		got, err := store.Get(context.Background(), "every-5s")
		if err != nil || got.Iteration != 1000 {
			t.Errorf("stored trigger: %+v, %v; want iteration 1000", got, err)
		}
	})
}

// A node that dies mid-run leaves its occurrence claimed: another node
// recovers it when the lease ends, and the schedule goes on.
func TestCronCrashMidRunIsRecovered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		ctx := context.Background()
		cfg := recurringConfig
		cfg.ScanInterval = time.Second // the scan finds the expired lease
		a := startRecurring(t, store, log, "a", cfg, nil)
		register(t, a, trigger.Trigger{ID: "minutely", Cron: "* * * * *"}, trigger.RegisterCreated)
		stop(t, a) // registered, then gone
		due := time.Date(2000, 1, 1, 0, 1, 0, 0, time.UTC)
		sleepUntil(due)
		// A node claims the 0:01 occurrence and dies without an outcome.
		dead, err := store.Claim(ctx, "minutely", trigger.Claim{Owner: "dead", Now: time.Now(), Until: time.Now().Add(30 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		b := startRecurring(t, store, log, "b", cfg, nil)
		sleepUntil(due.Add(2*time.Minute + 30*time.Second))
		stop(t, b)
		runs := log.of("minutely")
		if len(runs) != 3 {
			t.Fatalf("%d runs, want the recovered 0:01 and then 0:02, 0:03", len(runs))
		}
		if r := runs[0]; !r.trigger.Recovered || !r.occ.Scheduled.Equal(due) || r.trigger.Token <= dead.Token || r.start.Sub(due) < 30*time.Second || r.start.Sub(due) > 31*time.Second {
			t.Errorf("first run %+v; want 0:01 recovered when the lease ended, 30s late", r)
		}
		for i, r := range runs[1:] {
			if want := due.Add(time.Duration(i+1) * time.Minute); !r.occ.Scheduled.Equal(want) || r.trigger.Recovered || r.start.Sub(want) > time.Millisecond {
				t.Errorf("run %d: %+v; want the occurrence at %v, on time", i+1, r, want)
			}
		}
	})
}

// A scheduler stopped while a run is in progress (its Stop deadline cuts the
// run off) gives the occurrence back: the next scheduler runs that same
// occurrence, then goes on.
func TestCronStopMidRunGivesTheOccurrenceBack(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		block := true
		var mu sync.Mutex
		a := startRecurring(t, store, log, "a", recurringConfig, func(ctx context.Context, _ *trigger.Trigger) error {
			mu.Lock()
			b := block
			mu.Unlock()
			if b {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		register(t, a, trigger.Trigger{ID: "minutely", Cron: "* * * * *"}, trigger.RegisterCreated)
		due := time.Date(2000, 1, 1, 0, 1, 0, 0, time.UTC)
		sleepUntil(due.Add(10 * time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := a.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want the deadline", err)
		}
		<-a.Stopped()
		got, _ := store.Get(context.Background(), "minutely")
		if got.State != trigger.StateScheduled || !got.PlannedAt.Equal(due) || got.Attempt != 0 {
			t.Fatalf("after the cut-off run: %+v; want the 0:01 occurrence scheduled again, no attempt used", got)
		}
		mu.Lock()
		block = false
		mu.Unlock()
		b := startRecurring(t, store, log, "b", recurringConfig, nil)
		sleepUntil(due.Add(90 * time.Second))
		stop(t, b)
		var scheduled []time.Time
		for _, r := range log.of("minutely") {
			if r.node == "b" {
				scheduled = append(scheduled, r.occ.Scheduled)
			}
		}
		if want := []time.Time{due, due.Add(time.Minute)}; !slices.EqualFunc(scheduled, want, time.Time.Equal) {
			t.Errorf("the second scheduler ran occurrences %v, want %v", scheduled, want)
		}
	})
}

// An occurrence that keeps failing is retried, then the trigger moves on to
// the next occurrence with the error recorded: it never fails for good.
func TestCronFailedOccurrenceMovesOn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		cfg := recurringConfig
		cfg.MaxAttempts, cfg.RetryBase = 3, time.Second
		s := startRecurring(t, store, log, "a", cfg, func(context.Context, *trigger.Trigger) error {
			return errors.New("report service down")
		})
		register(t, s, trigger.Trigger{ID: "hourly", Cron: "@hourly"}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 1, 1, 1, 30, 0, 0, time.UTC))
		runs := log.of("hourly")
		if len(runs) != 3 {
			t.Fatalf("%d runs of the 1:00 occurrence, want 3 attempts", len(runs))
		}
		for i, r := range runs {
			if r.trigger.Attempt != i+1 || !r.occ.Scheduled.Equal(time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)) || r.occ.CatchUp {
				t.Errorf("attempt %d: %+v; want it to stand for 1:00", i+1, r)
			}
		}
		got, _ := store.Get(context.Background(), "hourly")
		if got.State != trigger.StateScheduled || !got.DueAt.Equal(time.Date(2000, 1, 1, 2, 0, 0, 0, time.UTC)) ||
			got.LastError != "report service down" || got.Iteration != 1 || got.Attempt != 0 {
			t.Errorf("after the failed occurrence: %s due %v error %q iteration %d attempt %d; want scheduled at 2:00 with the error kept",
				got.State, got.DueAt, got.LastError, got.Iteration, got.Attempt)
		}
		stop(t, s)
	})
}

// Runs never overlap: the next occurrence is written when a run ends, so
// the occurrences a long run covers are misfires, handled by the policy.
func TestCronLongRunsDoNotOverlap(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		cfg := recurringConfig
		cfg.MisfireGrace = 10 * time.Second
		s := startRecurring(t, store, log, "a", cfg, func(context.Context, *trigger.Trigger) error {
			time.Sleep(150 * time.Second)
			return nil
		})
		register(t, s, trigger.Trigger{ID: "minutely", Cron: "* * * * *"}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 1, 1, 0, 10, 0, 0, time.UTC))
		stop(t, s)
		runs := log.of("minutely")
		min := func(m int) time.Time { return time.Date(2000, 1, 1, 0, m, 0, 0, time.UTC) }
		// 0:01 runs to 0:03:30; 0:02 then runs late as a catch-up that
		// stands for 0:02 and 0:03 (fire once), to 0:06; then 0:04 ...
		want := []struct {
			scheduled, start time.Time
			catchUp          bool
		}{
			{min(1), min(1), false},
			{min(2), min(3).Add(30 * time.Second), true},
			{min(4), min(6), true},
			{min(7), min(8).Add(30 * time.Second), true},
		}
		if len(runs) != len(want) {
			t.Fatalf("%d runs, want %d", len(runs), len(want))
		}
		for i, w := range want {
			r := runs[i]
			if !r.occ.Scheduled.Equal(w.scheduled) || r.start.Sub(w.start) > time.Millisecond || r.start.Before(w.start) || r.occ.CatchUp != w.catchUp {
				t.Errorf("run %d: stands for %v (catch-up %v), started %v; want %v (%v) at %v", i, r.occ.Scheduled, r.occ.CatchUp, r.start, w.scheduled, w.catchUp, w.start)
			}
			if i > 0 && r.start.Before(runs[i-1].end) {
				t.Errorf("run %d started at %v, before run %d ended at %v", i, r.start, i-1, runs[i-1].end)
			}
		}
	})
}

// Registering again: the same definition changes nothing; a changed spec
// moves the next due time; a change during a run applies after it.
func TestCronRegisterUpdates(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		release := make(chan struct{})
		s := startRecurring(t, store, log, "a", recurringConfig, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.Payload["block"] == true {
				<-release
			}
			return nil
		})
		ctx := context.Background()
		register(t, s, trigger.Trigger{ID: "report", Cron: "0 3 * * *", NodeID: "report"}, trigger.RegisterCreated)
		register(t, s, trigger.Trigger{ID: "report", Cron: "0 3 * * *", NodeID: "report"}, trigger.RegisterUnchanged)
		register(t, s, trigger.Trigger{ID: "report", Cron: "CRON_TZ=UTC 0 3 * * *", NodeID: "report"}, trigger.RegisterUpdated) // a time zone is a change
		register(t, s, trigger.Trigger{ID: "report", Cron: "0 4 * * *", NodeID: "report"}, trigger.RegisterUpdated)
		rec, err := s.Recurring(ctx)
		if err != nil || len(rec) != 1 || rec[0].ID != "report" || !rec[0].DueAt.Equal(time.Date(2000, 1, 1, 4, 0, 0, 0, time.UTC)) || rec[0].Cron != "0 4 * * *" {
			t.Fatalf("Recurring = %+v, %v; want report due at 4:00", rec, err)
		}
		sleepUntil(time.Date(2000, 1, 1, 5, 0, 0, 0, time.UTC))
		if runs := log.of("report"); len(runs) != 1 || !runs[0].start.Equal(time.Date(2000, 1, 1, 4, 0, 0, 0, time.UTC)) {
			t.Fatalf("runs %+v; want one at 4:00 (not at 3:00)", runs)
		}
		// A run in progress when the spec changes finishes; the next
		// occurrence comes from the new spec.
		register(t, s, trigger.Trigger{ID: "blocking", Cron: "0 6 * * *", Payload: trigger.Payload{"block": true}}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 1, 1, 6, 0, 1, 0, time.UTC))
		register(t, s, trigger.Trigger{ID: "blocking", Cron: "30 7 * * *", Payload: trigger.Payload{"block": true}}, trigger.RegisterUpdated)
		close(release)
		synctest.Wait()
		got, _ := store.Get(ctx, "blocking")
		if got.State != trigger.StateScheduled || !got.DueAt.Equal(time.Date(2000, 1, 1, 7, 30, 0, 0, time.UTC)) {
			t.Errorf("after the run: %s due %v; want the new spec's 7:30", got.State, got.DueAt)
		}
		stop(t, s)
	})
}

// Paused triggers do not run until unpaused; then they go on from the next
// occurrence, without catching up the paused time. Fire still runs one.
func TestCronPauseAndUnpause(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, nil)
		ctx := context.Background()
		register(t, s, trigger.Trigger{ID: "hourly", Cron: "@hourly", Misfire: trigger.MisfireFireAll}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 1, 1, 1, 30, 0, 0, time.UTC))
		if err := s.Pause(ctx, "hourly"); err != nil {
			t.Fatal(err)
		}
		if err := s.Pause(ctx, "hourly"); err != nil {
			t.Fatalf("second Pause: %v", err)
		}
		// A replica restarting registers it again: it stays paused.
		register(t, s, trigger.Trigger{ID: "hourly", Cron: "@hourly", Misfire: trigger.MisfireFireAll}, trigger.RegisterUnchanged)
		sleepUntil(time.Date(2000, 1, 1, 4, 30, 0, 0, time.UTC))
		if n := len(log.of("hourly")); n != 1 {
			t.Fatalf("%d runs while paused, want only the 1:00 one before", n)
		}
		if err := s.Fire(ctx, "hourly"); err != nil {
			t.Fatalf("Fire of a paused trigger: %v", err)
		}
		synctest.Wait()
		if got, _ := store.Get(ctx, "hourly"); !got.Paused {
			t.Fatal("Fire unpaused the trigger")
		}
		rec, _ := s.Recurring(ctx)
		if len(rec) != 1 || !rec[0].Paused {
			t.Fatalf("Recurring = %+v; want it listed as paused", rec)
		}
		if err := s.Unpause(ctx, "hourly"); err != nil {
			t.Fatal(err)
		}
		sleepUntil(time.Date(2000, 1, 1, 6, 30, 0, 0, time.UTC))
		stop(t, s)
		var got []string
		for _, r := range log.of("hourly") {
			got = append(got, fmt.Sprintf("%s/%v", r.start.Format("15:04"), r.occ.CatchUp))
		}
		// 1:00; the Fire at 4:30 (no occurrence); then 5:00 and 6:00, with
		// no catch-up of 2:00-4:00 although the policy is fire-all.
		if want := []string{"01:00/false", "04:30/false", "05:00/false", "06:00/false"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		if r := log.of("hourly")[1]; r.hasOcc {
			t.Errorf("the fired run stands for an occurrence: %+v", r.occ)
		}
	})
}

// Fire before the due time runs the trigger once more: the planned
// occurrence still runs.
func TestCronFireEarlyKeepsTheOccurrence(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, nil)
		register(t, s, trigger.Trigger{ID: "daily", Cron: "@daily"}, trigger.RegisterCreated)
		sleepUntil(time.Date(2000, 1, 1, 10, 0, 0, 0, time.UTC))
		if err := s.Fire(context.Background(), "daily"); err != nil {
			t.Fatal(err)
		}
		sleepUntil(time.Date(2000, 1, 2, 1, 0, 0, 0, time.UTC))
		stop(t, s)
		runs := log.of("daily")
		if len(runs) != 2 || !runs[0].start.Equal(time.Date(2000, 1, 1, 10, 0, 0, 0, time.UTC)) || runs[1].start.Sub(time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)) > time.Millisecond {
			t.Fatalf("runs %+v; want the fired one at 10:00 and the planned one at midnight", runs)
		}
	})
}

// Custom schedules are named in the config; the trigger keeps the name.
func TestCronCustomSchedule(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		cfg := recurringConfig
		cfg.Schedules = map[string]trigger.Schedule{
			"quarter-past-even-hours": scheduleFunc(func(t time.Time) time.Time {
				next := t.Truncate(2 * time.Hour).Add(15 * time.Minute)
				for !next.After(t) {
					next = next.Add(2 * time.Hour)
				}
				return next
			}),
			"once": scheduleFunc(func(t time.Time) time.Time {
				if t.Before(time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)) {
					return t.Truncate(time.Hour).Add(time.Hour)
				}
				return time.Time{} // ended
			}),
			"broken": scheduleFunc(func(t time.Time) time.Time { panic("bug") }),
		}
		s := startRecurring(t, store, log, "a", cfg, nil)
		register(t, s, trigger.Trigger{ID: "custom", Cron: "@quarter-past-even-hours"}, trigger.RegisterCreated)
		register(t, s, trigger.Trigger{ID: "ends", Cron: "@once"}, trigger.RegisterCreated)
		if _, err := s.Register(context.Background(), trigger.Trigger{ID: "broken", Cron: "@broken"}); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("Register of a schedule whose Next panics: %v, want ErrInvalid", err)
		}
		sleepUntil(time.Date(2000, 1, 1, 5, 0, 0, 0, time.UTC))
		stop(t, s)
		var got []string
		for _, r := range log.of("custom") {
			got = append(got, r.start.Format("15:04"))
		}
		if want := []string{"00:15", "02:15", "04:15"}; !slices.Equal(got, want) {
			t.Errorf("custom schedule ran at %v, want %v", got, want)
		}
		if got, _ := store.Get(context.Background(), "ends"); got.State != trigger.StateCompleted || len(log.of("ends")) != 1 {
			t.Errorf("a schedule that ended: %s after %d runs, want completed after 1", got.State, len(log.of("ends")))
		}
	})
}

type scheduleFunc func(time.Time) time.Time

func (f scheduleFunc) Next(t time.Time) time.Time { return f(t) }

// LOOP runs the same node again Interval after each run until the consumer
// stops it or MaxIterations is reached; the iteration is visible.
func TestLoop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, func(ctx context.Context, tr *trigger.Trigger) error {
			time.Sleep(time.Second)
			if tr.ID == "until-done" && tr.Iteration == 2 {
				return trigger.Complete(trigger.Trigger{ID: "after-loop", DueAt: time.Now()})
			}
			return nil
		})
		ctx := context.Background()
		start := time.Now()
		for _, tr := range []trigger.Trigger{
			{ID: "five-times", Type: trigger.TypeLoop, Interval: 10 * time.Second, MaxIterations: 5},
			{ID: "until-done", Type: trigger.TypeLoop, Interval: time.Minute, Delay: time.Minute},
		} {
			if _, err := s.Schedule(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Hour)
		stop(t, s)
		for id, want := range map[string][]time.Duration{
			"five-times": {0, 11 * time.Second, 22 * time.Second, 33 * time.Second, 44 * time.Second},
			"until-done": {time.Minute, 2*time.Minute + time.Second, 3*time.Minute + 2*time.Second},
		} {
			runs := log.of(id)
			var got []time.Duration
			for i, r := range runs {
				got = append(got, r.start.Sub(start))
				if r.trigger.Iteration != i {
					t.Errorf("%s run %d sees iteration %d", id, i, r.trigger.Iteration)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s ran at %v, want %v", id, got, want)
			}
			if got, _ := store.Get(ctx, id); got.State != trigger.StateCompleted {
				t.Errorf("%s is %s, want completed", id, got.State)
			}
		}
		if len(log.of("after-loop")) != 1 {
			t.Error("the follow-up of the loop's Complete did not run")
		}
	})
}

// TIMER: once, at a time or after a delay.
func TestTimer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, nil)
		ctx := context.Background()
		start := time.Now()
		for _, tr := range []trigger.Trigger{
			{ID: "in-90s", Type: trigger.TypeTimer, Delay: 90 * time.Second},
			{ID: "at-noon", Type: trigger.TypeTimer, DueAt: time.Date(2000, 1, 1, 12, 0, 0, 0, time.UTC)},
		} {
			if _, err := s.Schedule(ctx, tr); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := store.Get(ctx, "in-90s"); !got.DueAt.Equal(start.Add(90*time.Second)) || got.Delay != 0 {
			t.Errorf("a timer with a delay is stored due %v (delay %v), want %v", got.DueAt, got.Delay, start.Add(90*time.Second))
		}
		sleepUntil(time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC))
		stop(t, s)
		for id, want := range map[string]time.Time{"in-90s": start.Add(90 * time.Second), "at-noon": time.Date(2000, 1, 1, 12, 0, 0, 0, time.UTC)} {
			if runs := log.of(id); len(runs) != 1 || runs[0].start.Sub(want) > time.Millisecond || runs[0].start.Before(want) {
				t.Errorf("%s: runs %+v, want one at %v", id, runs, want)
			}
		}
	})
}

// Bad recurring input gets ErrInvalid saying what is wrong, and stores
// nothing.
func TestRecurringBadInput(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		cfg := recurringConfig
		cfg.Tick = 10 * time.Millisecond
		cfg.Schedules = map[string]trigger.Schedule{"custom": scheduleFunc(func(t time.Time) time.Time { return t.Add(time.Hour) })}
		s := startRecurring(t, store, log, "a", cfg, nil)
		ctx := context.Background()
		register(t, s, trigger.Trigger{ID: "existing", Cron: "0 3 * * *"}, trigger.RegisterCreated)
		before, _ := store.Get(ctx, "existing")
		for _, c := range []struct {
			input string
			tr    trigger.Trigger
			want  string
		}{
			{"an empty spec", trigger.Trigger{Type: trigger.TypeCron}, "needs a Cron spec"},
			{"three fields", trigger.Trigger{Cron: "0 3 *"}, "expected 5 to 6 fields"},
			{"minute 61", trigger.Trigger{Cron: "61 3 * * *"}, "above maximum"},
			{"seven fields", trigger.Trigger{Cron: "0 0 3 * * * *"}, "expected 5 to 6 fields"},
			{"an unknown descriptor", trigger.Trigger{Cron: "@dialy"}, "not a cron descriptor, nor a name in Config.Schedules"},
			{"@every without a duration", trigger.Trigger{Cron: "@every soon"}, "@every"},
			{"@every below the tick", trigger.Trigger{Cron: "@every 5ms"}, "shorter than the scheduler's tick"},
			{"@every zero", trigger.Trigger{Cron: "@every 0s"}, "must be positive"},
			{"a spec that never fires", trigger.Trigger{Cron: "0 0 30 2 *"}, "has no occurrence"},
			{"an unknown time zone", trigger.Trigger{Cron: "0 3 * * *", TimeZone: "Mars/Olympus_Mons"}, "unknown time zone"},
			{"an unknown CRON_TZ", trigger.Trigger{Cron: "CRON_TZ=Europe/Atlantis 0 3 * * *"}, "unknown time zone"},
			{"the Local zone", trigger.Trigger{Cron: "0 3 * * *", TimeZone: "Local"}, "differs between machines"},
			{"two time zones", trigger.Trigger{Cron: "CRON_TZ=Europe/Berlin 0 3 * * *", TimeZone: "Asia/Tokyo"}, "give it once"},
			{"an empty CRON_TZ", trigger.Trigger{Cron: "CRON_TZ= 0 3 * * *"}, "without a time zone"},
			{"a time zone for a named schedule", trigger.Trigger{Cron: "@custom", TimeZone: "Asia/Tokyo"}, "does not apply"},
			{"an unknown misfire policy", trigger.Trigger{Cron: "0 3 * * *", Misfire: 7}, "misfire policy"},
		} {
			c.tr.ID = "existing" // bad input changes nothing, even for a stored ID
			if _, err := s.Register(ctx, c.tr); !errors.Is(err, trigger.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Register with %s: %v; want ErrInvalid saying %q", c.input, err, c.want)
			}
			c.tr.ID, c.tr.Type = "new", trigger.TypeCron
			if _, err := s.Schedule(ctx, c.tr); !errors.Is(err, trigger.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Schedule with %s: %v; want ErrInvalid saying %q", c.input, err, c.want)
			}
		}
		for _, c := range []struct {
			input string
			tr    trigger.Trigger
			want  string
		}{
			{"a LOOP below the tick", trigger.Trigger{Type: trigger.TypeLoop, Interval: time.Millisecond}, "at least the tick"},
			{"a LOOP without an interval", trigger.Trigger{Type: trigger.TypeLoop}, "at least the tick"},
			{"a LOOP with negative MaxIterations", trigger.Trigger{Type: trigger.TypeLoop, Interval: time.Second, MaxIterations: -1}, "MaxIterations"},
			{"a TIMER without a time", trigger.Trigger{Type: trigger.TypeTimer}, "needs a due time"},
			{"a negative delay", trigger.Trigger{Type: trigger.TypeTimer, Delay: -time.Second}, "Delay"},
			{"a Cron on a TIMER", trigger.Trigger{Type: trigger.TypeTimer, Delay: time.Second, Cron: "@daily"}, "for CRON triggers"},
			{"an Interval on a NEXT trigger", trigger.Trigger{DueAt: time.Now(), Interval: time.Second}, "for LOOP triggers"},
		} {
			c.tr.ID = "new"
			if _, err := s.Schedule(ctx, c.tr); !errors.Is(err, trigger.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Schedule with %s: %v; want ErrInvalid saying %q", c.input, err, c.want)
			}
		}
		for _, c := range []struct {
			input string
			tr    trigger.Trigger
		}{
			{"no ID", trigger.Trigger{Cron: "0 3 * * *"}},
			{"another type", trigger.Trigger{ID: "x", Type: trigger.TypeLoop, Interval: time.Second}},
		} {
			if _, err := s.Register(ctx, c.tr); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("Register with %s: %v, want ErrInvalid", c.input, err)
			}
		}
		for name, call := range map[string]func() error{
			"Pause":   func() error { return s.Pause(ctx, "") },
			"Unpause": func() error { return s.Unpause(ctx, "") },
		} {
			if err := call(); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("%s with an empty id: %v, want ErrInvalid", name, err)
			}
		}
		if _, err := s.Get(ctx, "new"); !errors.Is(err, trigger.ErrNotFound) {
			t.Errorf("bad input stored a trigger: %v", err)
		}
		if after, _ := store.Get(ctx, "existing"); !after.UpdatedAt.Equal(before.UpdatedAt) || after.Cron != before.Cron {
			t.Errorf("bad input changed the stored trigger: %+v", after)
		}
		stop(t, s)
	})
}

func TestNewValidatesRecurringConfig(t *testing.T) {
	t.Parallel()
	every := scheduleFunc(func(t time.Time) time.Time { return t.Add(time.Hour) })
	for _, tc := range []struct {
		name string
		cfg  trigger.Config
		want string
	}{
		{"an absurd cap", trigger.Config{MisfireCap: 1_000_000}, "MisfireCap"},
		{"a negative cap", trigger.Config{MisfireCap: -1}, "MisfireCap"},
		{"an unknown policy", trigger.Config{Misfire: 9}, "Misfire"},
		{"a nil schedule", trigger.Config{Schedules: map[string]trigger.Schedule{"x": nil}}, "nil"},
		{"a descriptor's name", trigger.Config{Schedules: map[string]trigger.Schedule{"daily": every}}, "cron descriptor"},
		{"a name with a space", trigger.Config{Schedules: map[string]trigger.Schedule{"two words": every}}, "use letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := trigger.New(memstore.New(), &recorder{}, tc.cfg)
			if s != nil || !errors.Is(err, trigger.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want ErrInvalid naming %q", s, err, tc.want)
			}
		})
	}
}

func TestParseCron(t *testing.T) {
	t.Parallel()
	s, err := trigger.ParseCron("CRON_TZ=Asia/Tokyo 0 9 * * mon-fri", "")
	if err != nil {
		t.Fatal(err)
	}
	tokyo := mustZone(t, "Asia/Tokyo")
	if got := s.Next(time.Date(2026, 5, 1, 10, 0, 0, 0, tokyo)); !got.Equal(time.Date(2026, 5, 4, 9, 0, 0, 0, tokyo)) { // Friday 10:00 -> Monday 9:00
		t.Errorf("Next = %v", got)
	}
	if _, err := trigger.ParseCron("0 9 * *", "UTC"); !errors.Is(err, trigger.ErrInvalid) {
		t.Errorf("a bad spec: %v, want ErrInvalid", err)
	}
}
