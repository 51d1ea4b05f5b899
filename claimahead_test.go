package trigger_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// slowClaims is a store whose claims take a millisecond, as a commit to
// disk or a round trip to a server can.
type slowClaims struct{ trigger.Store }

func (s slowClaims) Claim(ctx context.Context, id string, c trigger.Claim) (trigger.Trigger, error) {
	time.Sleep(time.Millisecond)
	return s.Store.Claim(ctx, id, c)
}

// setupTimed starts a scheduler as setup does, on a memstore whose claims
// take a millisecond if slow is set, and has it claim and run triggers
// until it has timed its claims: whether it claims ahead depends on it.
// The runs of those triggers are not recorded.
func setupTimed(t *testing.T, slow bool, cfg trigger.Config, fn func(ctx context.Context, t *trigger.Trigger) error) *bundle {
	t.Helper()
	b := &bundle{store: memstore.New(), runs: &recorder{}}
	var store trigger.Store = b.store
	if slow {
		store = slowClaims{b.store}
	}
	b.sched = start(t, store, b.runs, cfg)
	const n = 32
	for i := range n {
		b.schedule(t, trigger.Trigger{ID: fmt.Sprint("timing-", i), DueAt: time.Now().Add(time.Duration(i))})
	}
	time.Sleep(time.Second)
	synctest.Wait()
	if c := b.runs.count(); c != n {
		t.Fatalf("setupTimed: %d of the %d triggers that time claims ran", c, n)
	}
	b.runs.mu.Lock()
	b.runs.runs, b.runs.fn = nil, fn
	b.runs.mu.Unlock()
	return b
}

// With a store whose claims are slow, a trigger armed in the wheel is
// claimed ClaimAhead before its due time, and runs at its due time, not
// before.
func TestClaimAheadRunsAtDueTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setupTimed(t, true, trigger.Config{ClaimAhead: 100 * time.Millisecond}, nil)
		due := time.Now().Add(time.Second)
		id := b.schedule(t, trigger.Trigger{DueAt: due})

		time.Sleep(850 * time.Millisecond)
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateScheduled {
			t.Fatalf("150ms before its due time: state %v, want scheduled (not claimed yet)", got.State)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		got := b.get(t, id)
		if got.State != trigger.StateRunning || got.Owner != b.sched.NodeID() || got.Attempt != 1 {
			t.Fatalf("50ms before its due time: state %v owner %q attempt %d, want claimed by this scheduler", got.State, got.Owner, got.Attempt)
		}
		if n := b.runs.count(); n != 0 {
			t.Fatalf("ran %d times before its due time", n)
		}

		time.Sleep(time.Until(due) + time.Millisecond)
		synctest.Wait()
		runs := b.runs.of(id)
		if len(runs) != 1 || runs[0].at.Before(due) || runs[0].at.Sub(due) > time.Millisecond {
			t.Fatalf("runs %v, want one within a tick after %v", runs, due)
		}
		if got := b.get(t, id); got.State != trigger.StateCompleted || got.Attempt != 1 {
			t.Fatalf("state %v attempt %d, want completed after one attempt", got.State, got.Attempt)
		}
		b.stop(t)
	})
}

// With claims that are fast, a trigger due at an instant of its own is
// claimed at its due time: claiming it ahead would cost more than it
// saves. It runs then, not before.
func TestClaimAtDueTimeWhenClaimsAreFast(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setupTimed(t, false, trigger.Config{ClaimAhead: 100 * time.Millisecond}, nil)
		due := time.Now().Add(time.Second)
		id := b.schedule(t, trigger.Trigger{DueAt: due})

		time.Sleep(time.Until(due) - time.Millisecond)
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateScheduled {
			t.Fatalf("a millisecond before its due time: state %v, want scheduled (claimed at its due time)", got.State)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		runs := b.runs.of(id)
		if len(runs) != 1 || runs[0].at.Before(due) || runs[0].at.Sub(due) > time.Millisecond {
			t.Fatalf("runs %v, want one within a tick after %v", runs, due)
		}
		b.stop(t)
	})
}

// With claims that are fast, of the triggers due at one instant the first
// armed is claimed at that instant and the others ClaimAhead before it, so
// that their claims do not wait for one another at the due time. All run
// at the due time, the one claimed then first.
func TestClaimAheadSharedInstant(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setupTimed(t, false, trigger.Config{ClaimAhead: 100 * time.Millisecond, Workers: 1}, nil)
		due := time.Now().Add(time.Second)
		ids := []string{"first", "second", "third"}
		for _, id := range ids {
			b.schedule(t, trigger.Trigger{ID: id, DueAt: due})
		}

		time.Sleep(time.Until(due) - 50*time.Millisecond)
		synctest.Wait()
		for i, id := range ids {
			want := trigger.StateRunning
			if i == 0 {
				want = trigger.StateScheduled
			}
			if got := b.get(t, id); got.State != want {
				t.Fatalf("50ms before the due time: %s is %v, want %v", id, got.State, want)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		b.runs.mu.Lock()
		runs := slices.Clone(b.runs.runs)
		b.runs.mu.Unlock()
		var order []string
		for _, r := range runs {
			order = append(order, r.id)
		}
		if len(runs) != 3 || runs[0].id != "first" {
			t.Fatalf("ran %v, want all three, the one claimed at its due time first", order)
		}
		for _, r := range runs {
			if !r.at.Equal(due) {
				t.Fatalf("%s ran at %v, want at its due time %v", r.id, r.at, due)
			}
		}
		b.stop(t)
	})
}

// Canceling a trigger claimed ahead drops its run.
func TestClaimAheadCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setupTimed(t, true, trigger.Config{ClaimAhead: 100 * time.Millisecond}, nil)
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now().Add(time.Second)})
		time.Sleep(950 * time.Millisecond)
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateRunning {
			t.Fatalf("state %v, want running (claimed ahead)", got.State)
		}
		if err := b.sched.Cancel(context.Background(), id); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := b.runs.count(); n != 0 {
			t.Fatalf("canceled trigger ran %d times", n)
		}
		if got := b.get(t, id); got.State != trigger.StateCanceled {
			t.Fatalf("state %v, want canceled", got.State)
		}
		b.stop(t)
	})
}

// A scheduler stopped while it holds triggers claimed ahead gives them back
// due at their due times, their attempts unused, and another scheduler runs
// them then.
func TestClaimAheadStopGivesBack(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		first := &recorder{}
		s := start(t, store, first, trigger.Config{ClaimAhead: 200 * time.Millisecond, Logger: quiet})
		due := time.Now().Add(time.Second)
		for i := range 3 {
			if _, err := s.Schedule(context.Background(), trigger.Trigger{ID: fmt.Sprint("t", i), DueAt: due}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(900 * time.Millisecond)
		synctest.Wait()
		stop(t, s)
		for i := range 3 {
			got, err := store.Get(context.Background(), fmt.Sprint("t", i))
			if err != nil {
				t.Fatal(err)
			}
			if got.State != trigger.StateScheduled || !got.DueAt.Equal(due) || got.Attempt != 0 {
				t.Fatalf("%s after Stop: state %v due %v attempt %d; want scheduled at %v, attempt 0", got.ID, got.State, got.DueAt, got.Attempt, due)
			}
		}

		second := &recorder{}
		s2 := start(t, store, second, trigger.Config{Logger: quiet})
		time.Sleep(time.Until(due) + time.Second)
		synctest.Wait()
		if first.count() != 0 || second.count() != 3 {
			t.Fatalf("runs: %d on the stopped scheduler, %d on the next; want 0 and 3", first.count(), second.count())
		}
		for _, r := range second.runs {
			if r.at.Before(due) {
				t.Errorf("%s ran %v early", r.id, due.Sub(r.at))
			}
		}
		stop(t, s2)
	})
}

// When many triggers claimed ahead fall due at once, every one runs and
// every outcome is recorded, also when the scheduler stops right after.
func TestClaimAheadBurst(t *testing.T) {
	t.Parallel()
	for _, stopAtOnce := range []bool{false, true} {
		t.Run(fmt.Sprint("stop at once ", stopAtOnce), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				// One trigger is claimed at the due time, the others ahead.
				b := setupTimed(t, false, trigger.Config{Workers: 4}, func(ctx context.Context, tr *trigger.Trigger) error {
					time.Sleep(time.Millisecond) // the others stay due meanwhile
					return nil
				})
				const n = 500
				due := time.Now().Add(time.Second)
				for i := range n {
					b.schedule(t, trigger.Trigger{ID: fmt.Sprintf("t%03d", i), DueAt: due, Payload: map[string]any{"i": i}})
				}
				time.Sleep(time.Until(due))
				if stopAtOnce {
					time.Sleep(10 * time.Millisecond)
					b.stop(t)
				} else {
					time.Sleep(time.Minute)
				}
				synctest.Wait()
				for i := range n {
					id := fmt.Sprintf("t%03d", i)
					got, err := b.store.Get(context.Background(), id)
					if err != nil {
						t.Fatal(err)
					}
					runs := b.runs.of(id)
					if len(runs) > 1 {
						t.Fatalf("%s ran %d times", id, len(runs))
					}
					switch {
					case len(runs) == 1 && got.State != trigger.StateCompleted:
						t.Fatalf("%s ran, but its state is %v: outcome lost", id, got.State)
					case len(runs) == 0 && (got.State != trigger.StateScheduled || got.Attempt != 0):
						t.Fatalf("%s did not run: state %v attempt %d, want given back", id, got.State, got.Attempt)
					case len(runs) == 1 && runs[0].at.Before(due):
						t.Fatalf("%s ran early", id)
					}
				}
				if !stopAtOnce {
					if c := b.runs.count(); c != n {
						t.Fatalf("%d runs, want %d", c, n)
					}
					b.stop(t)
				}
			})
		})
	}
}

// A CRON trigger claimed ahead whose run starts later than MisfireGrace
// after its due time (every worker was busy) runs as a misfire catch-up:
// what a run claimed ahead stands for is decided as of its due time only
// if it starts within the grace.
func TestClaimAheadLateStartIsCatchUp(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		type seen struct {
			occ trigger.Occurrence
			ok  bool
			at  time.Time
		}
		var runs []seen
		b := setupTimed(t, true, trigger.Config{Workers: 1, ClaimAhead: 100 * time.Millisecond, MisfireGrace: time.Second},
			func(ctx context.Context, tr *trigger.Trigger) error {
				if tr.ID == "blocker" {
					time.Sleep(5 * time.Second)
					return nil
				}
				occ, ok := trigger.OccurrenceFromContext(ctx)
				runs = append(runs, seen{occ, ok, time.Now()})
				return nil
			})
		boundary := time.Now().Truncate(10 * time.Second).Add(10 * time.Second)
		if _, err := b.sched.Register(context.Background(), trigger.Trigger{ID: "cron", Cron: "*/10 * * * * *"}); err != nil {
			t.Fatalf("Register: %v", err)
		}
		// Claimed ahead before the CRON trigger, the blocker holds the
		// only worker from 50ms before the boundary to 4.95s after it.
		b.schedule(t, trigger.Trigger{ID: "blocker", DueAt: boundary.Add(-50 * time.Millisecond)})
		time.Sleep(time.Until(boundary) + 6*time.Second)
		synctest.Wait()
		b.stop(t)
		if len(runs) != 1 {
			t.Fatalf("CRON runs %+v, want one", runs)
		}
		r := runs[0]
		if late := r.at.Sub(boundary); late <= time.Second {
			t.Fatalf("the CRON run started %v after its due time; the test needs it later than MisfireGrace", late)
		}
		if !r.ok || !r.occ.CatchUp || !r.occ.Scheduled.Equal(boundary) {
			t.Fatalf("occurrence %+v (ok %v), want a catch-up for %v", r.occ, r.ok, boundary)
		}
	})
}

// When triggers claimed ahead fall due together, a consumer that changes
// its copy of the trigger changes nothing the scheduler records (outcomes
// deferred while the others start are recorded from the consumer's copy
// only if it is unchanged), and the scheduler writes nothing into a copy
// the consumer keeps after its run.
func TestClaimAheadConsumerCopy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		kept := map[string]*trigger.Trigger{}
		var mu sync.Mutex
		b := setupTimed(t, false, trigger.Config{Workers: 4}, func(ctx context.Context, tr *trigger.Trigger) error {
			mu.Lock()
			defer mu.Unlock()
			id := tr.ID
			if tr.Payload["change"] == true {
				tr.ID, tr.Cron, tr.Attempt, tr.Token, tr.MaxAttempts = "other", "@yearly", 99, 1, 1
				tr.Payload = trigger.Payload{"changed": true}
			}
			kept[id] = tr
			return nil
		})
		const n = 200
		boundary := time.Now().Truncate(10 * time.Second).Add(10 * time.Second)
		for i := range n {
			tr := trigger.Trigger{ID: fmt.Sprintf("c%03d", i), Cron: "*/10 * * * * *", Payload: trigger.Payload{"change": i%2 == 0}}
			if _, err := b.sched.Register(context.Background(), tr); err != nil {
				t.Fatalf("Register: %v", err)
			}
		}
		time.Sleep(time.Until(boundary) + time.Second)
		synctest.Wait()
		b.stop(t)
		for i := range n {
			id := fmt.Sprintf("c%03d", i)
			if runs := b.runs.of(id); len(runs) != 1 {
				t.Fatalf("%s ran %d times, want once", id, len(runs))
			}
			got := b.get(t, id)
			if got.State != trigger.StateScheduled || !got.DueAt.Equal(boundary.Add(10*time.Second)) || got.Cron != "*/10 * * * * *" || got.Payload["change"] != (i%2 == 0) {
				t.Fatalf("%s after its run: state %v due %v cron %q payload %v, want its next occurrence, unchanged",
					id, got.State, got.DueAt, got.Cron, got.Payload)
			}
			k := kept[id]
			if changed := i%2 == 0; changed && (k.ID != "other" || k.Payload["changed"] != true) || !changed && k.ID != id {
				t.Fatalf("%s: the consumer's copy is %+v after the run, not as the consumer left it", id, *k)
			}
		}
	})
}
