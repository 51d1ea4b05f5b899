package trigger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// Waits in recurring triggers. A run of a CRON occurrence that waits goes
// on, once its wait ends, as the same occurrence; the next occurrence is
// planned from the one it stands for, and starts without the wait.

// approvals is a CRON consumer whose first run of each occurrence waits
// for the token "approve-HH:MM" (the occurrence's time) and whose run after
// the wait checks the resume and completes.
func approvals(ctx context.Context, tr *trigger.Trigger) error {
	occ, ok := trigger.OccurrenceFromContext(ctx)
	if !ok {
		return trigger.Fail(errors.New("a run without an occurrence"))
	}
	token := "approve-" + occ.Scheduled.Format("15:04")
	w, waited := trigger.WaitResultFrom(ctx)
	if !waited {
		return trigger.WaitFor(token, 0)
	}
	if w.Kind != trigger.WaitKindToken || w.Outcome != trigger.WaitResumed || w.Token != token || tr.Payload["approved"] != true {
		return trigger.Fail(fmt.Errorf("after the wait: %+v, payload %v", w, tr.Payload))
	}
	return nil
}

func getTrigger(t *testing.T, s *trigger.Scheduler, id string) trigger.Trigger {
	t.Helper()
	tr, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return tr
}

func resume(t *testing.T, s *trigger.Scheduler, token string, p trigger.Payload, want trigger.ResumeResult) {
	t.Helper()
	if got, err := s.Resume(context.Background(), token, p); err != nil || got != want {
		t.Fatalf("Resume(%q) = %v, %v; want %v", token, got, err, want)
	}
}

// A CRON occurrence waits for a token; the approval comes 20 minutes late
// (past MisfireGrace, under MisfireSkip), after a replica registered the job
// again. The run after the resume stands for the same occurrence, on time;
// the next occurrence is the one after it, and waits for its own token.
func TestCronWaitForThenNextOccurrence(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, approvals)
		job := trigger.Trigger{ID: "report", Cron: "0 * * * *", Misfire: trigger.MisfireSkip}
		register(t, s, job, trigger.RegisterCreated)
		h1 := time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)
		for i, occ := range []time.Time{h1, h1.Add(time.Hour)} {
			sleepUntil(occ.Add(time.Second))
			token := "approve-" + occ.Format("15:04")
			got := getTrigger(t, s, "report")
			if got.State != trigger.StateWaiting || got.WaitKey != token || got.Wait.Kind != trigger.WaitKindToken || !got.PlannedAt.Equal(occ) || got.Iteration != i {
				t.Fatalf("occurrence %v after its first run: %+v; want waiting for %q", occ, got, token)
			}
			// A replica starting registers the job again: the wait stays.
			register(t, s, job, trigger.RegisterUnchanged)
			if got := getTrigger(t, s, "report"); got.State != trigger.StateWaiting || got.WaitKey != token {
				t.Fatalf("after the registration: %+v; want it waiting for %q", got, token)
			}
			sleepUntil(occ.Add(20 * time.Minute))
			resume(t, s, token, trigger.Payload{"approved": true}, trigger.ResumeDelivered)
			time.Sleep(time.Second)
			got = getTrigger(t, s, "report")
			next := occ.Add(time.Hour)
			if got.State != trigger.StateScheduled || !got.DueAt.Equal(next) || !got.PlannedAt.Equal(next) || got.Iteration != i+1 ||
				got.Wait != (trigger.Wait{}) || got.LastError != "" {
				t.Fatalf("after the occurrence %v resumed: %+v; want the next occurrence %v, iteration %d, no wait", occ, got, next, i+1)
			}
			resume(t, s, token, nil, trigger.ResumeDuplicate)
			// The resume's payload was merged for good; a registration
			// now that the occurrence is over puts the registered one back.
			if got.Payload["approved"] != true {
				t.Fatalf("payload after the occurrence: %v", got.Payload)
			}
			register(t, s, job, trigger.RegisterUpdated)
			if got := getTrigger(t, s, "report"); got.Payload != nil || !got.DueAt.Equal(next) {
				t.Fatalf("after the registration: %+v; want the registered payload and the same due time", got)
			}
		}
		stop(t, s)
		runs := log.of("report")
		if len(runs) != 4 {
			t.Fatalf("%d runs, want 4 (two per occurrence)", len(runs))
		}
		for i, r := range runs {
			want := h1.Add(time.Duration(i/2) * time.Hour)
			if !r.hasOcc || !r.occ.Scheduled.Equal(want) || r.occ.CatchUp {
				t.Errorf("run %d at %v stands for %+v (ok %v); want the occurrence %v, not a catch-up", i, r.start, r.occ, r.hasOcc, want)
			}
		}
	})
}

// The run after a wait goes on with its occurrence however late it starts:
// a waiting trigger fired (it has no due time), and a time wait that ends
// while no scheduler runs, are not misfires to skip. Each run stands for
// the occurrence that parked, and the next occurrence follows it.
func TestCronWaitEndedLateIsNotSkipped(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		consume := func(ctx context.Context, tr *trigger.Trigger) error {
			if _, waited := trigger.WaitResultFrom(ctx); waited {
				return nil
			}
			if tr.ID == "fired" {
				return trigger.WaitFor("never", 0)
			}
			return trigger.WaitUntil(time.Now().Add(5 * time.Minute))
		}
		a := startRecurring(t, store, log, "a", recurringConfig, consume)
		for _, id := range []string{"fired", "timed"} {
			register(t, a, trigger.Trigger{ID: id, Cron: "0 * * * *", Misfire: trigger.MisfireSkip}, trigger.RegisterCreated)
		}
		h1 := time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)
		sleepUntil(h1.Add(time.Minute))
		stop(t, a) // the time wait ends while no scheduler runs

		sleepUntil(h1.Add(40 * time.Minute))
		b := startRecurring(t, store, log, "b", recurringConfig, consume)
		if err := b.Fire(context.Background(), "fired"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		for _, id := range []string{"fired", "timed"} {
			runs := log.of(id)
			if len(runs) != 2 {
				t.Fatalf("%s ran %d times, want 2 (its continuation not skipped)", id, len(runs))
			}
			if r := runs[1]; r.node != "b" || !r.hasOcc || !r.occ.Scheduled.Equal(h1) || r.occ.CatchUp {
				t.Errorf("%s: the run after the wait on %s stands for %+v; want the occurrence %v", id, r.node, r.occ, h1)
			}
			got := getTrigger(t, b, id)
			if got.State != trigger.StateScheduled || !got.PlannedAt.Equal(h1.Add(time.Hour)) || got.Iteration != 1 || got.Wait != (trigger.Wait{}) {
				t.Errorf("%s after its occurrence: %+v; want the next occurrence", id, got)
			}
		}
		res, err := b.Resume(context.Background(), "never", nil)
		if err != nil || res != trigger.ResumeTooLate {
			t.Errorf("Resume after the fired wait = %v, %v; want too late", res, err)
		}
		stop(t, b)
	})
}

// A LOOP iteration that waits runs again after its wait, and each
// iteration starts without the wait of the one before.
func TestLoopIterationsWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, recurringConfig, func(ctx context.Context, tr *trigger.Trigger) error {
			if _, waited := trigger.WaitResultFrom(ctx); !waited {
				return trigger.WaitUntil(time.Now().Add(10 * time.Second))
			}
			return nil
		})
		b.schedule(t, trigger.Trigger{ID: "loop", Type: trigger.TypeLoop, Interval: time.Minute, MaxIterations: 3})
		time.Sleep(time.Hour)
		b.stop(t)
		runs := b.runs.of("loop")
		if len(runs) != 6 {
			t.Fatalf("%d runs, want 6 (three iterations, each waiting once)", len(runs))
		}
		for i, r := range runs {
			if r.trigger.Iteration != i/2 {
				t.Errorf("run %d is of iteration %d, want %d", i, r.trigger.Iteration, i/2)
			}
		}
		if got := b.get(t, "loop"); got.State != trigger.StateCompleted || got.Iteration != 2 {
			t.Errorf("loop after its iterations: %+v", got)
		}
	})
}

// A CRON run that breaks the one-wait rule, or asks for a wait the store
// refuses, moves on to the next occurrence with the error, as after any
// failure: the trigger does not fail for good.
func TestCronRefusedWaitMovesOn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		s := startRecurring(t, store, log, "a", recurringConfig, func(ctx context.Context, tr *trigger.Trigger) error {
			if tr.ID == "two" {
				return errors.Join(trigger.WaitFor("x", 0), trigger.WaitUntil(time.Now()))
			}
			return trigger.WaitFor("y", -time.Second)
		})
		for _, id := range []string{"two", "negative"} {
			register(t, s, trigger.Trigger{ID: id, Cron: "0 * * * *"}, trigger.RegisterCreated)
		}
		sleepUntil(time.Date(2000, 1, 1, 1, 0, 1, 0, time.UTC))
		stop(t, s)
		for id, msg := range map[string]string{"two": "one wait at a time", "negative": "negative timeout"} {
			got := getTrigger(t, s, id)
			if got.State != trigger.StateScheduled || !got.DueAt.Equal(time.Date(2000, 1, 1, 2, 0, 0, 0, time.UTC)) || !strings.Contains(got.LastError, msg) {
				t.Errorf("%s: %v due %v, last error %q; want the next occurrence with an error naming %q", id, got.State, got.DueAt, got.LastError, msg)
			}
		}
	})
}

// A CRON trigger paused while its occurrence waits until a time, and
// unpaused before that time, keeps the wait: the occurrence goes on at its
// time, and the next one follows it.
func TestCronPausedInAWaitKeepsIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store, log := memstore.New(), &occLog{}
		h1 := time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)
		s := startRecurring(t, store, log, "a", recurringConfig, func(ctx context.Context, tr *trigger.Trigger) error {
			if _, waited := trigger.WaitResultFrom(ctx); !waited {
				return trigger.WaitUntil(time.Now().Add(30 * time.Minute))
			}
			return nil
		})
		register(t, s, trigger.Trigger{ID: "report", Cron: "0 * * * *"}, trigger.RegisterCreated)
		sleepUntil(h1.Add(5 * time.Minute))
		if err := s.Pause(context.Background(), "report"); err != nil {
			t.Fatal(err)
		}
		sleepUntil(h1.Add(10 * time.Minute))
		if err := s.Unpause(context.Background(), "report"); err != nil {
			t.Fatal(err)
		}
		got := getTrigger(t, s, "report")
		if got.Paused || got.State != trigger.StateScheduled || !got.DueAt.Equal(h1.Add(30*time.Minute)) || !got.PlannedAt.Equal(h1) || got.Wait.Kind != trigger.WaitKindTime {
			t.Fatalf("unpaused in its wait: %+v; want the wait kept", got)
		}
		sleepUntil(h1.Add(31 * time.Minute))
		stop(t, s)
		runs := log.of("report")
		if len(runs) != 2 || !runs[1].start.Equal(h1.Add(30*time.Minute)) || !runs[1].occ.Scheduled.Equal(h1) {
			t.Fatalf("runs %+v; want the occurrence of %v to go on at its wait's end", runs, h1)
		}
		if got := getTrigger(t, s, "report"); got.State != trigger.StateScheduled || !got.DueAt.Equal(h1.Add(time.Hour)) || got.Iteration != 1 {
			t.Errorf("after the occurrence: %+v; want the next one", got)
		}
	})
}
