package trigger_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// batching is a memstore with BatchFinisher (one Finish per outcome), so
// that the scheduler hands outcomes to its finisher as it does with bbolt.
// It records the largest group it was given.
type batching struct {
	*memstore.Store
	largest atomic.Int64
}

func (b *batching) FinishBatch(ctx context.Context, fs []trigger.Finishing) []error {
	for n := int64(len(fs)); ; {
		l := b.largest.Load()
		if n <= l || b.largest.CompareAndSwap(l, n) {
			break
		}
	}
	errs := make([]error, len(fs))
	for i, f := range fs {
		errs[i] = b.Finish(ctx, f.ID, f.Token, f.Outcome)
	}
	return errs
}

// slowFinish is a batching store whose outcomes for trigger "a" wait for
// release: a store whose commit of that outcome is slow.
type slowFinish struct {
	batching
	release chan struct{}
}

func (s *slowFinish) Finish(ctx context.Context, id string, token uint64, o trigger.Outcome) error {
	if id == "a" {
		<-s.release
	}
	return s.Store.Finish(ctx, id, token, o)
}

func (s *slowFinish) FinishBatch(ctx context.Context, fs []trigger.Finishing) []error {
	errs := make([]error, len(fs))
	for i, f := range fs {
		errs[i] = s.Finish(ctx, f.ID, f.Token, f.Outcome)
	}
	return errs
}

// A worker hands its run's outcome over and goes on: with one worker and
// the outcome of "a" slow to record, "b" still runs. Until the outcome is
// recorded, "a" counts as running here: its lease is kept alive past its
// length and no scan runs it again. Stop waits for the outcome.
func TestWorkerDoesNotWaitForTheOutcome(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &slowFinish{batching: batching{Store: memstore.New()}, release: make(chan struct{})}
		rec := &recorder{}
		s, err := trigger.New(store, rec, trigger.Config{Workers: 1, LeaseDuration: 30 * time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, id := range []string{"a", "b"} {
			if _, err := s.Schedule(ctx, trigger.Trigger{ID: id, DueAt: now.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		if n := len(rec.of("b")); n != 1 {
			t.Fatalf("b ran %d times while a's outcome was being recorded, want 1", n)
		}

		// Three lease lengths later a is still held here, and not run again.
		time.Sleep(90 * time.Second)
		if got, _ := store.Get(ctx, "a"); got.State != trigger.StateRunning || got.LeaseUntil.Before(time.Now()) {
			t.Fatalf("a is %s with its lease until %v (now %v): want running with a live lease", got.State, got.LeaseUntil, time.Now())
		}

		stopped := make(chan error)
		go func() { stopped <- s.Stop(ctx) }()
		synctest.Wait()
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned (%v) before a's outcome was recorded", err)
		default:
		}
		close(store.release)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			if got, _ := store.Get(ctx, id); got.State != trigger.StateCompleted {
				t.Errorf("%s is %s after Stop, want completed", id, got.State)
			}
			if n := len(rec.of(id)); n != 1 {
				t.Errorf("%s ran %d times, want 1", id, n)
			}
		}
	})
}

// Outcomes recorded in groups (BatchFinisher) are recorded as one by one:
// 500 triggers due at once on 4 workers all complete, once each, some after
// a retry, and the finisher did record groups.
func TestOutcomesInGroups(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &batching{Store: memstore.New()}
		rec := &recorder{fn: func(ctx context.Context, t *trigger.Trigger) error {
			if t.Attempt == 1 && t.ID[len(t.ID)-1] == '7' {
				return trigger.RetryAfter(time.Second, context.DeadlineExceeded) // some retry, in the same groups
			}
			return nil
		}}
		s, err := trigger.New(store, rec, trigger.Config{Workers: 4, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		due := time.Now().Add(time.Second)
		ts := make([]trigger.Trigger, 500)
		for i := range ts {
			ts[i] = trigger.Trigger{ID: "t" + strconv.Itoa(i), DueAt: due}
		}
		if _, err := s.ScheduleBatch(ctx, ts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		for _, tr := range ts {
			got, err := store.Get(ctx, tr.ID)
			if err != nil || got.State != trigger.StateCompleted {
				t.Fatalf("%s: %v, %v; want completed", tr.ID, got.State, err)
			}
			want := 1
			if tr.ID[len(tr.ID)-1] == '7' {
				want = 2
			}
			if n := len(rec.of(tr.ID)); n != want {
				t.Errorf("%s ran %d times, want %d", tr.ID, n, want)
			}
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := store.largest.Load(); n < 2 {
			t.Errorf("the largest group had %d outcomes; the finisher should have grouped them", n)
		}
	})
}
