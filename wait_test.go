package trigger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/triggerkit/trigger"
)

// A resume racing the waiter's park (before it, while the run is in
// progress, or after it parked) completes the wait once: every waiter runs
// exactly twice, the second time resumed with the payload.
func TestResumeRacingParkCompletesOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{Workers: 4}, func(ctx context.Context, tr *trigger.Trigger) error {
			if r, ok := trigger.WaitResultFrom(ctx); ok {
				if r.Outcome != trigger.WaitResumed || tr.Payload["v"] != tr.ID {
					return trigger.Fail(fmt.Errorf("second run: %+v payload %v", r, tr.Payload))
				}
				return nil
			}
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			return trigger.WaitFor("tok-"+tr.ID, 0)
		})
		const n = 200
		var wg sync.WaitGroup
		var delivered, stored atomic.Int32
		for i := range n {
			id := fmt.Sprint("w", i)
			resumeAt := time.Duration(rand.IntN(6)) * time.Millisecond
			wg.Go(func() {
				time.Sleep(resumeAt)
				res, err := b.sched.Resume(context.Background(), "tok-"+id, trigger.Payload{"v": id})
				switch {
				case err != nil:
					t.Errorf("Resume(%s): %v", id, err)
				case res == trigger.ResumeDelivered:
					delivered.Add(1)
				case res == trigger.ResumeStored:
					stored.Add(1)
				default:
					t.Errorf("Resume(%s) = %v", id, res)
				}
				if res, err := b.sched.Resume(context.Background(), "tok-"+id, nil); err != nil || res != trigger.ResumeDuplicate {
					t.Errorf("second Resume(%s) = %v, %v; want duplicate", id, res, err)
				}
			})
			b.schedule(t, trigger.Trigger{ID: id, DueAt: time.Now().Add(time.Duration(rand.IntN(4)) * time.Millisecond)})
		}
		wg.Wait()
		time.Sleep(time.Minute)
		for i := range n {
			id := fmt.Sprint("w", i)
			if runs := b.runs.of(id); len(runs) != 2 {
				t.Errorf("%s ran %d times, want 2", id, len(runs))
			}
			if got := b.get(t, id); got.State != trigger.StateCompleted {
				t.Errorf("%s is %v (%s), want completed", id, got.State, got.LastError)
			}
		}
		t.Logf("%d resumes delivered to a parked waiter, %d stored before it parked", delivered.Load(), stored.Load())
		if delivered.Load() == 0 || stored.Load() == 0 {
			t.Errorf("the race did not cover both orders")
		}
		b.stop(t)
	})
}

// 1,000 children finishing in random order resume their parent exactly
// once, after the last of them, and the parent sees each child's outcome.
func TestThousandChildrenResumeParentOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 1000
		var mu sync.Mutex
		var lastChildEnd time.Time
		var parentRuns []time.Time
		var seen trigger.WaitResult
		b := setup(t, trigger.Config{Workers: 32}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.ParentID != "" { // a child
				time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				lastChildEnd = time.Now()
				if tr.NodeID == "fails" {
					return trigger.Fail(errors.New("child failed"))
				}
				return trigger.Complete()
			}
			if r, ok := trigger.WaitResultFrom(ctx); ok {
				mu.Lock()
				parentRuns = append(parentRuns, time.Now())
				seen = r
				mu.Unlock()
				return nil
			}
			mu.Lock()
			parentRuns = append(parentRuns, time.Now())
			mu.Unlock()
			kids := make([]trigger.Trigger, n)
			for i := range kids {
				kids[i] = trigger.Trigger{ID: fmt.Sprintf("kid-%04d", i), DueAt: time.Now().Add(time.Duration(rand.IntN(2000)) * time.Millisecond)}
				if i%100 == 7 {
					kids[i].NodeID = "fails"
				}
			}
			return trigger.WaitChildren(kids...)
		})
		parent := b.schedule(t, trigger.Trigger{ID: "parent", InstanceID: "flow-1", DueAt: time.Now()})
		time.Sleep(time.Minute)
		mu.Lock()
		defer mu.Unlock()
		if len(parentRuns) != 2 {
			t.Fatalf("parent ran %d times, want 2 (park, then resume)", len(parentRuns))
		}
		if parentRuns[1].Before(lastChildEnd) {
			t.Errorf("parent resumed at %v, before its last child ended at %v", parentRuns[1], lastChildEnd)
		}
		if seen.Kind != trigger.WaitKindChildren || seen.Outcome != trigger.WaitResumed || len(seen.Children) != n {
			t.Fatalf("parent's wait result: kind %v outcome %v, %d children", seen.Kind, seen.Outcome, len(seen.Children))
		}
		failed := 0
		for _, c := range seen.Children {
			switch {
			case c.ParentID != parent || c.ParentInstanceID != "flow-1" || c.InstanceID == "" || c.InstanceID == "flow-1":
				t.Fatalf("child %s: parent %q, parent instance %q, instance %q", c.ID, c.ParentID, c.ParentInstanceID, c.InstanceID)
			case c.State == trigger.StateFailed && c.LastError == "child failed":
				failed++
			case c.State != trigger.StateCompleted:
				t.Fatalf("child %s is %v", c.ID, c.State)
			}
		}
		if failed != n/100 {
			t.Errorf("%d children failed, want %d", failed, n/100)
		}
		b.stop(t)
	})
}

// A parent that leaves its children wait before the children end (it is
// fired, or canceled and retried) and parks on a new batch waits for that
// batch alone: the children of the first batch that end meanwhile do not
// count, it resumes once the last new child ended, and it sees the new
// batch. The run that left the wait saw the batch it left.
func TestParentWaitsForItsNewBatchAfterLeavingAWait(t *testing.T) {
	t.Parallel()
	for _, leave := range []struct {
		name string
		do   func(s *trigger.Scheduler) error
	}{
		{"Fire", func(s *trigger.Scheduler) error { return s.Fire(context.Background(), "p") }},
		{"CancelAndRetry", func(s *trigger.Scheduler) error {
			if err := s.Cancel(context.Background(), "p"); err != nil {
				return err
			}
			return s.Retry(context.Background(), "p")
		}},
	} {
		t.Run(leave.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				child := func(id string, after time.Duration) trigger.Trigger {
					return trigger.Trigger{ID: id, DueAt: start.Add(after)}
				}
				var mu sync.Mutex
				var seen []trigger.WaitResult // the results of the parent's runs after its first
				b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
					if tr.ParentID != "" {
						return nil
					}
					r, ok := trigger.WaitResultFrom(ctx)
					if !ok {
						return trigger.WaitChildren(child("a1", time.Hour), child("a2", 2*time.Hour))
					}
					mu.Lock()
					seen = append(seen, r)
					mu.Unlock()
					if r.Outcome != trigger.WaitResumed { // taken out of its wait
						return trigger.WaitChildren(child("b1", 3*time.Hour), child("b2", 4*time.Hour))
					}
					return nil
				})
				b.schedule(t, trigger.Trigger{ID: "p", DueAt: start})
				time.Sleep(time.Minute)
				if err := leave.do(b.sched); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Hour)
				runs := b.runs.of("p")
				if len(runs) != 3 {
					t.Fatalf("parent ran %d times, want 3 (park, leave the wait and park again, resume)", len(runs))
				}
				if d := runs[2].at.Sub(start); d != 4*time.Hour {
					t.Errorf("parent resumed at +%v, want +4h, when its last new child ended", d)
				}
				mu.Lock()
				defer mu.Unlock()
				for i, want := range []string{"[a1:scheduled a2:scheduled]", "[b1:completed b2:completed]"} {
					var got []string
					for _, c := range seen[i].Children {
						got = append(got, c.ID+":"+c.State.String())
					}
					if fmt.Sprint(got) != want {
						t.Errorf("run %d saw the children %v, want %s", i+2, got, want)
					}
				}
				if seen[0].Outcome != trigger.WaitFired || seen[1].Outcome != trigger.WaitResumed {
					t.Errorf("runs 2 and 3 saw their waits %v and %v, want fired (taken out of it), then resumed", seen[0].Outcome, seen[1].Outcome)
				}
				if got := b.get(t, "p"); got.State != trigger.StateCompleted {
					t.Errorf("parent is %v (%s), want completed", got.State, got.LastError)
				}
				b.stop(t)
			})
		})
	}
}

// A waiter with a timeout times out exactly once: the consumer sees
// WaitTimedOut, and a resume that comes later is too late.
func TestWaitTimeoutOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var outcomes []trigger.WaitOutcome
		var mu sync.Mutex
		b := setup(t, trigger.Config{ScanInterval: time.Second}, func(ctx context.Context, tr *trigger.Trigger) error {
			if r, ok := trigger.WaitResultFrom(ctx); ok {
				mu.Lock()
				outcomes = append(outcomes, r.Outcome)
				mu.Unlock()
				return nil
			}
			return trigger.WaitFor("approval", 10*time.Minute)
		})
		// A second scheduler on the store competes for the timeout.
		other := start(t, b.store, b.runs, trigger.Config{ScanInterval: time.Second})
		start := time.Now()
		id := b.schedule(t, trigger.Trigger{DueAt: start})
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateWaiting || got.WaitKey != "approval" {
			t.Fatalf("after the first run: %v, key %q; want waiting for approval", got.State, got.WaitKey)
		}
		time.Sleep(time.Hour)
		runs := b.runs.of(id)
		if len(runs) != 2 {
			t.Fatalf("ran %d times, want 2", len(runs))
		}
		if d := runs[1].at.Sub(start); d < 10*time.Minute || d > 10*time.Minute+2*time.Second {
			t.Errorf("timed-out run at +%v, want +10m", d)
		}
		mu.Lock()
		if len(outcomes) != 1 || outcomes[0] != trigger.WaitTimedOut {
			t.Errorf("outcomes %v, want one timed out", outcomes)
		}
		mu.Unlock()
		if res, err := b.sched.Resume(context.Background(), "approval", nil); err != nil || res != trigger.ResumeTooLate {
			t.Errorf("Resume after the timeout = %v, %v; want too late", res, err)
		}
		b.stop(t)
		stop(t, other)
	})
}

// A trigger waiting until a time holds no worker: with one worker, other
// work runs meanwhile, and the waiter resumes at its time.
func TestWaitUntilHoldsNoWorker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		b := setup(t, trigger.Config{Workers: 1}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.NodeID != "waiter" {
				return nil
			}
			r, ok := trigger.WaitResultFrom(ctx)
			if !ok {
				if err := trigger.Checkpoint(ctx, trigger.Payload{"step": 2.0}); err != nil {
					return err
				}
				return trigger.WaitUntil(start.Add(time.Hour))
			}
			if r.Kind != trigger.WaitKindTime || r.Outcome != trigger.WaitResumed || tr.Payload["step"] != 2.0 || tr.Attempt != 1 {
				return trigger.Fail(fmt.Errorf("resumed: %+v, payload %v, attempt %d", r, tr.Payload, tr.Attempt))
			}
			return nil
		})
		w := b.schedule(t, trigger.Trigger{NodeID: "waiter", DueAt: start})
		synctest.Wait()
		other := b.schedule(t, trigger.Trigger{DueAt: start.Add(time.Minute)})
		time.Sleep(2 * time.Minute)
		if len(b.runs.of(other)) != 1 {
			t.Fatalf("other work did not run while the waiter waited")
		}
		time.Sleep(time.Hour)
		runs := b.runs.of(w)
		if len(runs) != 2 || runs[1].at.Sub(start) != time.Hour {
			t.Fatalf("waiter ran %d times (last at +%v), want twice, the second at +1h", len(runs), runs[len(runs)-1].at.Sub(start))
		}
		if got := b.get(t, w); got.State != trigger.StateCompleted {
			t.Fatalf("waiter %v: %s", got.State, got.LastError)
		}
		b.stop(t)
	})
}

// Two waits at once fail the trigger with an error naming the rule.
func TestTwoWaitsAtOnceFail(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			return errors.Join(trigger.WaitFor("a", 0), trigger.WaitUntil(time.Now().Add(time.Hour)))
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		synctest.Wait()
		got := b.get(t, id)
		if got.State != trigger.StateFailed || !strings.Contains(got.LastError, "one wait at a time") {
			t.Fatalf("state %v, last error %q; want failed naming the one-wait rule", got.State, got.LastError)
		}
		if len(b.runs.of(id)) != 1 {
			t.Errorf("ran %d times, want once (no retry)", len(b.runs.of(id)))
		}
		b.stop(t)
	})
}

// An EVENT trigger saved with a WaitKey waits (listed as waiting) until a
// resume delivers its key with a payload; a MANUAL one until it is fired.
func TestEventTriggerRunsWhenResumed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			r, ok := trigger.WaitResultFrom(ctx)
			if !ok || r.Outcome != trigger.WaitResumed || tr.Payload["paid"] != true || tr.Payload["order"] != "42" {
				return trigger.Fail(fmt.Errorf("run: %+v %v", r, tr.Payload))
			}
			return nil
		})
		id := b.schedule(t, trigger.Trigger{Type: trigger.TypeEvent, WaitKey: "order-42-paid", Payload: trigger.Payload{"order": "42"}})
		time.Sleep(time.Hour)
		waiting, err := b.sched.List(context.Background(), trigger.ListQuery{State: trigger.StateWaiting, Limit: 10})
		if err != nil || len(waiting) != 1 || waiting[0].ID != id {
			t.Fatalf("List(waiting) = %v, %v", waiting, err)
		}
		if res, err := b.sched.Resume(context.Background(), "order-42-paid", trigger.Payload{"paid": true}); err != nil || res != trigger.ResumeDelivered {
			t.Fatalf("Resume = %v, %v", res, err)
		}
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateCompleted {
			t.Fatalf("event trigger %v: %s", got.State, got.LastError)
		}
		b.stop(t)
	})
}

// A checkpoint saved before a failure is the payload of the retry.
func TestCheckpointSurvivesRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{RetryBase: time.Second, RetryMax: time.Second}, func(ctx context.Context, tr *trigger.Trigger) error {
			done, _ := tr.Payload["done"].(float64)
			if done >= 3 {
				return nil
			}
			if err := trigger.Checkpoint(ctx, trigger.Payload{"done": done + 1}); err != nil {
				return err
			}
			if cur, _ := trigger.FromContext(ctx); cur.Payload["done"] != done+1 || tr.Payload["done"] != done+1 {
				return trigger.Fail(errors.New("checkpoint not visible in the run"))
			}
			return errors.New("cut off")
		})
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		time.Sleep(time.Minute)
		runs := b.runs.of(id)
		if len(runs) != 4 {
			t.Fatalf("ran %d times, want 4", len(runs))
		}
		for i, r := range runs {
			if got, _ := r.trigger.Payload["done"].(float64); int(got) != i {
				t.Errorf("run %d started from %v, want %d", i+1, r.trigger.Payload["done"], i)
			}
		}
		if err := trigger.Checkpoint(context.Background(), nil); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("Checkpoint outside a run: %v, want ErrInvalid", err)
		}
		b.stop(t)
	})
}

// A queue limit caps the runs of its queue, counts a run until it parks,
// and leaves other queues alone.
func TestQueueLimits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		inQueue, peak, others := 0, 0, 0
		b := setup(t, trigger.Config{Workers: 8, QueueLimits: map[string]int{"slow": 2}}, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.Queue != "slow" {
				mu.Lock()
				others++
				mu.Unlock()
				return nil
			}
			if _, ok := trigger.WaitResultFrom(ctx); !ok && tr.NodeID == "parks" {
				return trigger.WaitUntil(time.Now().Add(time.Hour))
			}
			mu.Lock()
			inQueue++
			peak = max(peak, inQueue)
			mu.Unlock()
			time.Sleep(time.Second)
			mu.Lock()
			inQueue--
			mu.Unlock()
			return nil
		})
		now := time.Now()
		for i := range 3 { // they park at once: the wait frees their slot
			b.schedule(t, trigger.Trigger{Queue: "slow", NodeID: "parks", DueAt: now, Priority: 10 + i})
		}
		for range 10 {
			b.schedule(t, trigger.Trigger{Queue: "slow", DueAt: now})
		}
		for range 5 {
			b.schedule(t, trigger.Trigger{DueAt: now.Add(time.Millisecond)})
		}
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		if others != 5 {
			t.Errorf("%d runs of other queues while the slow queue was full, want 5", others)
		}
		mu.Unlock()
		time.Sleep(2 * time.Hour)
		mu.Lock()
		if peak != 2 {
			t.Errorf("peak of %d runs of the slow queue, want its limit 2", peak)
		}
		mu.Unlock()
		if n := b.runs.count(); n != 3*2+10+5 {
			t.Errorf("%d runs, want %d", n, 3*2+10+5)
		}
		b.stop(t)
	})
}

// Retried and resumed triggers go ahead of new work of the same priority.
func TestResumedAndRetriedGoFirst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var mu sync.Mutex
		var order []string
		b := setup(t, trigger.Config{Workers: 1, RetryBase: time.Millisecond, RetryMax: time.Millisecond}, func(ctx context.Context, tr *trigger.Trigger) error {
			mu.Lock()
			order = append(order, tr.NodeID)
			mu.Unlock()
			switch tr.NodeID {
			case "block":
				<-gate
			case "waiter":
				if _, ok := trigger.WaitResultFrom(ctx); !ok {
					return trigger.WaitFor("go", 0)
				}
			case "flaky":
				if tr.Attempt == 1 {
					return errors.New("once")
				}
			}
			return nil
		})
		now := time.Now()
		b.schedule(t, trigger.Trigger{NodeID: "waiter", DueAt: now})
		synctest.Wait()
		b.schedule(t, trigger.Trigger{NodeID: "flaky", DueAt: now})
		synctest.Wait()
		b.schedule(t, trigger.Trigger{NodeID: "block", DueAt: now})
		synctest.Wait()
		for range 5 {
			b.schedule(t, trigger.Trigger{NodeID: "new", DueAt: now})
		}
		if _, err := b.sched.Resume(context.Background(), "go", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // the retry comes due
		close(gate)
		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		got := strings.Join(order, " ")
		if want := "waiter flaky block flaky waiter new new new new new"; got != want && got != "waiter flaky block waiter flaky new new new new new" {
			t.Errorf("run order %q, want the retry and the resumed trigger before new work", got)
		}
		b.stop(t)
	})
}

func TestWaitBadInput(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, trigger.Config{}, func(ctx context.Context, tr *trigger.Trigger) error {
			return trigger.WaitFor("k", -time.Second)
		})
		for _, tok := range []string{"", strings.Repeat("x", 1025)} {
			if _, err := b.sched.Resume(context.Background(), tok, nil); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("Resume(%d-byte token): %v, want ErrInvalid", len(tok), err)
			}
		}
		if _, err := b.sched.Resume(context.Background(), "k", trigger.Payload{"f": func() {}}); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("Resume with an unserialisable payload: %v, want ErrInvalid", err)
		}
		// Nothing was stored by the refused resumes: this one is the first.
		if res, err := b.sched.Resume(context.Background(), "k2", nil); err != nil || res != trigger.ResumeStored {
			t.Errorf("Resume = %v, %v; want stored", res, err)
		}
		id := b.schedule(t, trigger.Trigger{DueAt: time.Now()})
		synctest.Wait()
		if got := b.get(t, id); got.State != trigger.StateFailed || !strings.Contains(got.LastError, "negative timeout") {
			t.Errorf("WaitFor with a negative timeout: %v %q, want failed naming the timeout", got.State, got.LastError)
		}
		if _, err := b.sched.Children(context.Background(), ""); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("Children(\"\"): %v, want ErrInvalid", err)
		}
		b.stop(t)
	})
	for _, limits := range []map[string]int{{"q": 0}, {"q": -1}} {
		if _, err := trigger.New(nil, nil, trigger.Config{QueueLimits: limits}); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("QueueLimits %v: %v, want ErrInvalid", limits, err)
		}
	}
}

// The scheduler's purge deletes the wait tokens no trigger waits for once
// they last changed more than Retention ago: an early resume no waiter
// took, and a delivered token its trigger moved on from. A duplicate
// resume after that is taken as new (stored). The token a trigger waits
// for is kept however long it waits. A negative Retention keeps tokens.
func TestPurgeLoopRemovesStaleTokens(t *testing.T) {
	t.Parallel()
	const keep = time.Hour
	for _, retention := range []time.Duration{keep, -1} {
		t.Run(fmt.Sprint("retention ", retention), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, trigger.Config{Retention: retention}, func(ctx context.Context, tr *trigger.Trigger) error {
					switch r, waited := trigger.WaitResultFrom(ctx); {
					case !waited:
						return trigger.WaitFor("step-1", 0)
					case r.Token == "step-1":
						return trigger.WaitFor("step-2", 0) // moves on
					}
					return nil
				})
				b.schedule(t, trigger.Trigger{ID: "flow", DueAt: time.Now()})
				time.Sleep(time.Second)
				resume(t, b.sched, "orphan", trigger.Payload{"n": 1}, trigger.ResumeStored)
				resume(t, b.sched, "step-1", nil, trigger.ResumeDelivered)
				time.Sleep(time.Second)
				if got := b.get(t, "flow"); got.State != trigger.StateWaiting || got.WaitKey != "step-2" {
					t.Fatalf("flow after step 1: %v waiting for %q; want it waiting for step-2", got.State, got.WaitKey)
				}
				// Within Retention, both are remembered.
				time.Sleep(keep / 2)
				resume(t, b.sched, "orphan", nil, trigger.ResumeDuplicate)
				resume(t, b.sched, "step-1", nil, trigger.ResumeDuplicate)
				// Past it, and past the purge after it (every minute).
				time.Sleep(keep/2 + 2*time.Minute)
				gone := trigger.ResumeStored
				if retention < 0 {
					gone = trigger.ResumeDuplicate
				}
				resume(t, b.sched, "orphan", nil, gone)
				resume(t, b.sched, "step-1", nil, gone)
				// flow has waited for step-2 longer than Retention.
				resume(t, b.sched, "step-2", nil, trigger.ResumeDelivered)
				time.Sleep(time.Second)
				if got := b.get(t, "flow"); got.State != trigger.StateCompleted || len(b.runs.of("flow")) != 3 {
					t.Fatalf("flow after step 2: %v (%s) after %d runs; want completed after 3", got.State, got.LastError, len(b.runs.of("flow")))
				}
				b.stop(t)
			})
		})
	}
}
