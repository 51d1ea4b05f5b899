package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// cron returns a CRON trigger with the given spec, due at due.
func cron(id, spec string, due time.Time) trigger.Trigger {
	return trigger.Trigger{ID: id, Type: trigger.TypeCron, Cron: spec, DueAt: due, Payload: trigger.Payload{"report": "nightly"}}
}

func (h *harness) register(now time.Time, tr trigger.Trigger, want trigger.RegisterResult) {
	h.Helper()
	got, err := h.s.Register(h.ctx, now, tr)
	if err != nil {
		h.Fatalf("Register(%q): %v", tr.ID, err)
	}
	if got != want {
		h.Fatalf("Register(%q) = %s, want %s", tr.ID, got, want)
	}
}

func (h *harness) pause(id string, now time.Time) {
	h.Helper()
	if err := h.s.Pause(h.ctx, id, now); err != nil {
		h.Fatalf("Pause(%q): %v", id, err)
	}
}

// notDue checks that id is not returned by Due far in the future, and that
// a claim without Force fails with ErrNotDue.
func (h *harness) notDue(id string) {
	h.Helper()
	for _, got := range h.dueIDs(at(100*24*time.Hour), at(100*24*time.Hour)) {
		if got == id {
			h.Errorf("Due returns %q", id)
		}
	}
	h.changesNothing(trigger.ErrNotDue, "claim of "+id+" without Force", func() error {
		_, err := h.s.Claim(h.ctx, id, lease("w2", at(100*24*time.Hour)))
		return err
	})
}

// PlannedAt: set by Save and Reschedule, kept by Retry and Snooze; and the
// schedule condition of an outcome.
func (s suite) plannedAt(t *testing.T) {
	s.test(t, "KeptAcrossRetryAndSnooze", func(h *harness) {
		h.save(plain("a", at(time.Hour)))
		c := h.claim("a", lease("w1", at(time.Hour)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(time.Hour), At: at(2 * time.Hour), Error: "boom"})
		if got := h.get("a"); !got.PlannedAt.Equal(at(time.Hour)) || !got.DueAt.Equal(at(2*time.Hour)) {
			h.Fatalf("after a retry: DueAt %v PlannedAt %v; want the retry time and the planned one", got.DueAt, got.PlannedAt)
		}
		c = h.claim("a", lease("w1", at(2*time.Hour)))
		if !c.PlannedAt.Equal(at(time.Hour)) {
			h.Errorf("the retry's claim has PlannedAt %v, want %v", c.PlannedAt, at(time.Hour))
		}
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeSnooze, Now: at(2 * time.Hour), At: at(3 * time.Hour)})
		if got := h.get("a"); !got.PlannedAt.Equal(at(time.Hour)) {
			h.Fatalf("after a snooze: PlannedAt %v, want %v", got.PlannedAt, at(time.Hour))
		}
		c = h.claim("a", lease("w1", at(3*time.Hour)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(3 * time.Hour), At: at(5 * time.Hour), Error: "failed for good"})
		want := finished(c, trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(3 * time.Hour), At: at(5 * time.Hour), Error: "failed for good"})
		h.expect(want)
		if want.PlannedAt != at(5*time.Hour) || want.LastError != "failed for good" {
			h.Fatalf("the expectation is wrong: %+v", want)
		}
	})
	s.test(t, "IfCron", func(h *harness) {
		h.save(cron("a", "0 3 * * *", t0))
		c := h.claim("a", lease("w1", t0))
		o := outcome(trigger.OutcomeReschedule)
		o.FollowUps = []trigger.Trigger{plain("f", t0)}
		for _, spec := range []trigger.CronSpec{{Cron: "0 4 * * *"}, {Cron: "0 3 * * *", TimeZone: "Europe/Berlin"}} {
			o.IfCron = &spec
			h.changesNothing(trigger.ErrConflict, fmt.Sprintf("Finish if the spec is %+v", spec), func() error {
				return h.s.Finish(h.ctx, "a", c.Token, o)
			})
		}
		o.IfCron = &trigger.CronSpec{Cron: "0 3 * * *"}
		h.finish("a", c.Token, o)
		h.expect(finished(c, o))
	})
	s.test(t, "ListByType", func(h *harness) {
		h.save(plain("n1", t0), cron("c1", "@daily", t0), plain("n2", t0), cron("c2", "@hourly", t0))
		for _, st := range []trigger.State{trigger.StateScheduled} {
			ts := h.list(trigger.ListQuery{State: st, Type: trigger.TypeCron, Limit: 10})
			if len(ts) != 2 || ts[0].ID != "c1" || ts[1].ID != "c2" {
				h.Errorf("List(%s, CRON) = %d triggers, want c1 and c2", st, len(ts))
			}
			if ts := h.list(trigger.ListQuery{State: st, Type: trigger.TypeCron, After: "c1", Limit: 1}); len(ts) != 1 || ts[0].ID != "c2" {
				h.Errorf("List(%s, CRON) after c1 = %d triggers, want c2", st, len(ts))
			}
		}
		h.claim("c1", lease("w1", t0))
		if ts := h.list(trigger.ListQuery{State: trigger.StateRunning, Type: trigger.TypeNext, Limit: 10}); len(ts) != 0 {
			h.Errorf("List(running, NEXT) = %d triggers, want none", len(ts))
		}
		if ts := h.list(trigger.ListQuery{State: trigger.StateRunning, Type: trigger.TypeCron, Limit: 10}); len(ts) != 1 || ts[0].ID != "c1" {
			h.Errorf("List(running, CRON) = %d triggers, want c1", len(ts))
		}
	})
}

func (s suite) register(t *testing.T) {
	s.test(t, "CreatesWhenAbsent", func(h *harness) {
		in := full("a")
		in.PlannedAt, in.Paused, in.State = at(-time.Hour), true, trigger.StateFailed // the store's: ignored
		h.register(t0, in, trigger.RegisterCreated)
		h.expect(stored(full("a"), t0))
	})
	s.test(t, "SameDefinitionChangesNothing", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		c := h.claim("a", lease("w1", at(3*time.Hour)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(3 * time.Hour), At: at(27 * time.Hour)})
		again := cron("a", "0 3 * * *", at(51*time.Hour))     // another replica, a day later
		again.TraceContext = map[string]string{"new": "span"} // not part of the definition
		again.Payload = trigger.Payload{"report": "nightly"}  // the same payload, serialised again
		h.changesNothing(nil, "Register of the same definition", func() error {
			res, err := h.s.Register(h.ctx, at(50*time.Hour), again)
			if err == nil && res != trigger.RegisterUnchanged {
				return fmt.Errorf("result %s, want unchanged", res)
			}
			return err
		})
	})
	s.test(t, "ChangedSpecMovesTheDueTime", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		c := h.claim("a", lease("w1", at(3*time.Hour)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(3 * time.Hour), At: at(4 * time.Hour), Error: "boom"})
		before := h.get("a")
		changed := cron("a", "30 4 * * *", at(4*time.Hour+30*time.Minute))
		changed.TimeZone = "UTC"
		h.register(at(4*time.Hour), changed, trigger.RegisterUpdated)
		want := before
		want.Cron, want.TimeZone, want.UpdatedAt = "30 4 * * *", "UTC", at(4*time.Hour)
		want.State, want.DueAt, want.PlannedAt, want.Attempt = trigger.StateScheduled, at(4*time.Hour+30*time.Minute), at(4*time.Hour+30*time.Minute), 0
		h.expect(want) // Iteration, LastError and CreatedAt kept
		h.expectDue(trigger.DueQuery{Now: at(5 * time.Hour), Until: at(5 * time.Hour), Limit: 10}, ref("a", at(4*time.Hour+30*time.Minute), 0))
	})
	s.test(t, "OtherChangesKeepTheDueTime", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		h.save(plain("b", at(3*time.Hour)))
		before := h.get("a")
		changed := cron("a", "0 3 * * *", at(27*time.Hour))
		changed.Payload, changed.NodeID, changed.Priority = trigger.Payload{"report": "weekly"}, "node-2", 5
		h.register(at(time.Hour), changed, trigger.RegisterUpdated)
		want := before
		want.Payload, want.NodeID, want.Priority, want.UpdatedAt = changed.Payload, "node-2", 5, at(time.Hour)
		h.expect(want)
		// The new priority orders it in the due index.
		h.expectDue(trigger.DueQuery{Now: at(3 * time.Hour), Until: at(3 * time.Hour), Limit: 10}, ref("a", at(3*time.Hour), 5), ref("b", at(3*time.Hour), 0))
	})
	s.test(t, "RunningFinishesUnderTheNewSpec", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		c := h.claim("a", lease("w1", at(3*time.Hour)))
		changed := cron("a", "0 4 * * *", at(4*time.Hour))
		changed.Payload = trigger.Payload{"report": "v2"}
		h.register(at(3*time.Hour+time.Second), changed, trigger.RegisterUpdated)
		got := h.get("a")
		if got.State != trigger.StateRunning || got.Token != c.Token || got.Owner != "w1" || !got.DueAt.Equal(at(3*time.Hour)) || got.Cron != "0 4 * * *" {
			h.Fatalf("after a Register during the run: %+v; want it running under the same claim, due time kept, with the new spec", got)
		}
		h.is(h.s.Extend(h.ctx, "a", c.Token, at(3*time.Hour+2*time.Second), at(3*time.Hour+time.Minute)), nil, "Extend after the Register")
		// The outcome computed from the old spec is refused; from the new one it is recorded.
		old := trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(3*time.Hour + 10*time.Second), At: at(27 * time.Hour), IfCron: &trigger.CronSpec{Cron: "0 3 * * *"}}
		h.changesNothing(trigger.ErrConflict, "Finish computed from the old spec", func() error { return h.s.Finish(h.ctx, "a", c.Token, old) })
		fresh := old
		fresh.At, fresh.IfCron = at(4*time.Hour), &trigger.CronSpec{Cron: "0 4 * * *"}
		h.finish("a", c.Token, fresh)
		got = h.get("a")
		if got.State != trigger.StateScheduled || !got.DueAt.Equal(at(4*time.Hour)) || got.Payload["report"] != "v2" || got.Iteration != 1 {
			h.Errorf("after the run: %+v; want scheduled at 4h with the new payload, iteration 1", got)
		}
	})
	s.test(t, "FinalIsRevivedOnlyByAChange", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		h.cancel("a", at(time.Hour))
		h.changesNothing(nil, "Register of a canceled trigger's definition", func() error {
			_, err := h.s.Register(h.ctx, at(2*time.Hour), cron("a", "0 3 * * *", at(3*time.Hour)))
			return err
		})
		if h.get("a").State != trigger.StateCanceled {
			h.Fatal("the same registration revived a canceled trigger")
		}
		h.register(at(2*time.Hour), cron("a", "0 5 * * *", at(5*time.Hour)), trigger.RegisterUpdated)
		if got := h.get("a"); got.State != trigger.StateScheduled || !got.DueAt.Equal(at(5*time.Hour)) {
			h.Errorf("after a changed registration: %s at %v, want scheduled at 5h", got.State, got.DueAt)
		}
	})
	s.test(t, "PausedStaysPaused", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		h.pause("a", at(time.Hour))
		h.register(at(2*time.Hour), cron("a", "0 5 * * *", at(5*time.Hour)), trigger.RegisterUpdated)
		if got := h.get("a"); !got.Paused || !got.DueAt.Equal(at(5*time.Hour)) {
			h.Errorf("after a changed registration: paused %v due %v, want paused, due at 5h", got.Paused, got.DueAt)
		}
		h.notDue("a")
	})
	s.test(t, "ConcurrentRegistrationsMakeOneTrigger", func(h *harness) {
		results := make([]trigger.RegisterResult, 32)
		errs := together(32, func(i int) error {
			var err error
			results[i], err = h.s.Register(h.ctx, t0, cron("a", "0 3 * * *", at(3*time.Hour)))
			return err
		})
		created := 0
		for i, err := range errs {
			h.is(err, nil, "concurrent Register")
			switch results[i] {
			case trigger.RegisterCreated:
				created++
			case trigger.RegisterUnchanged:
			default:
				h.Errorf("concurrent Register %d: %s", i, results[i])
			}
		}
		if created != 1 {
			h.Errorf("%d of 32 concurrent registrations created the trigger, want 1", created)
		}
		h.expectDue(trigger.DueQuery{Now: at(3 * time.Hour), Until: at(3 * time.Hour), Limit: 10}, ref("a", at(3*time.Hour), 0))
	})
}

func (s suite) pause(t *testing.T) {
	for _, st := range []trigger.State{trigger.StateScheduled, trigger.StateRetrying, trigger.StateWaiting} {
		s.test(t, "From/"+st.String(), func(h *harness) {
			want := h.inState("a", st)
			h.pause("a", at(10*time.Second))
			want.Paused, want.UpdatedAt = true, at(10*time.Second)
			h.expect(want)
			h.notDue("a")
			h.expectClaim("a", trigger.Claim{Owner: "w2", Now: at(time.Minute), Until: at(2 * time.Minute), Force: true}, false)
		})
	}
	s.test(t, "Running", func(h *harness) {
		c := h.inState("a", trigger.StateRunning) // leased until 1m
		h.pause("a", at(10*time.Second))
		h.is(h.s.Extend(h.ctx, "a", c.Token, at(20*time.Second), at(time.Minute)), nil, "Extend of a paused run")
		// A paused run whose lease ends is recovered like any other.
		h.expectDue(trigger.DueQuery{Now: at(time.Minute), Until: at(time.Minute), Limit: 10}, ref("a", at(time.Minute), 0))
		c = h.expectClaim("a", lease("w2", at(time.Minute)), true)
		o := trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(2 * time.Minute), At: at(time.Hour)}
		h.finish("a", c.Token, o)
		h.expect(finished(c, o)) // Paused kept
		h.notDue("a")
	})
	s.test(t, "Twice", func(h *harness) {
		h.inState("a", trigger.StateScheduled)
		h.pause("a", at(10*time.Second))
		h.changesNothing(nil, "Pause of a paused trigger", func() error { return h.s.Pause(h.ctx, "a", at(20*time.Second)) })
	})
	for _, st := range final {
		s.test(t, "From/"+st.String(), func(h *harness) {
			h.inState("a", st)
			h.changesNothing(trigger.ErrInvalidState, "Pause of a "+st.String()+" trigger", func() error { return h.s.Pause(h.ctx, "a", at(10*time.Second)) })
		})
	}
	s.test(t, "KeptByCancelAndRequeue", func(h *harness) {
		h.inState("a", trigger.StateScheduled)
		h.pause("a", at(time.Second))
		h.cancel("a", at(2*time.Second))
		h.is(h.s.Requeue(h.ctx, "a", at(3*time.Second), at(3*time.Second)), nil, "Requeue")
		if !h.get("a").Paused {
			h.Fatal("Cancel and Requeue unpaused the trigger")
		}
		h.notDue("a")
	})
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrNotFound, "Pause of an unknown ID", func() error { return h.s.Pause(h.ctx, "b", t0) })
	})
}

func (s suite) unpause(t *testing.T) {
	s.test(t, "KeepsTheDueTime", func(h *harness) {
		want := h.inState("a", trigger.StateRetrying) // due at 1h
		h.pause("a", at(10*time.Second))
		h.is(h.s.Unpause(h.ctx, "a", at(20*time.Second), time.Time{}, nil), nil, "Unpause")
		want.UpdatedAt = at(20 * time.Second)
		h.expect(want)
		h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), Limit: 10}, ref("a", at(time.Hour), 0))
	})
	s.test(t, "AtPlansAnew", func(h *harness) {
		want := h.inState("a", trigger.StateRetrying)
		h.pause("a", at(10*time.Second))
		h.is(h.s.Unpause(h.ctx, "a", at(20*time.Second), at(2*time.Hour), &trigger.CronSpec{}), nil, "Unpause")
		want.State, want.DueAt, want.PlannedAt, want.Attempt, want.UpdatedAt = trigger.StateScheduled, at(2*time.Hour), at(2*time.Hour), 0, at(20*time.Second)
		h.expect(want)
		h.expectDue(trigger.DueQuery{Now: at(2 * time.Hour), Until: at(2 * time.Hour), Limit: 10}, ref("a", at(2*time.Hour), 0))
	})
	s.test(t, "Running", func(h *harness) {
		want := h.inState("a", trigger.StateRunning)
		h.pause("a", at(10*time.Second))
		h.is(h.s.Unpause(h.ctx, "a", at(20*time.Second), at(time.Hour), nil), nil, "Unpause")
		want.UpdatedAt = at(20 * time.Second)
		h.expect(want)
		o := outcome(trigger.OutcomeSnooze)
		h.finish("a", want.Token, o)
		h.expectDue(trigger.DueQuery{Now: o.At, Until: o.At, Limit: 10}, ref("a", o.At, 0))
	})
	s.test(t, "NotPaused", func(h *harness) {
		h.inState("a", trigger.StateScheduled)
		h.changesNothing(nil, "Unpause of a trigger not paused", func() error {
			return h.s.Unpause(h.ctx, "a", at(20*time.Second), at(time.Hour), nil)
		})
	})
	s.test(t, "Conflict", func(h *harness) {
		h.save(cron("a", "0 3 * * *", at(3*time.Hour)))
		h.pause("a", at(10*time.Second))
		h.changesNothing(trigger.ErrConflict, "Unpause if the spec were another", func() error {
			return h.s.Unpause(h.ctx, "a", at(20*time.Second), at(time.Hour), &trigger.CronSpec{Cron: "0 4 * * *"})
		})
		h.is(h.s.Unpause(h.ctx, "a", at(20*time.Second), at(time.Hour), &trigger.CronSpec{Cron: "0 3 * * *"}), nil, "Unpause with the right spec")
	})
	for _, st := range final {
		s.test(t, "From/"+st.String(), func(h *harness) {
			h.inState("a", st)
			h.changesNothing(trigger.ErrInvalidState, "Unpause of a "+st.String()+" trigger", func() error {
				return h.s.Unpause(h.ctx, "a", at(10*time.Second), time.Time{}, nil)
			})
		})
	}
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrNotFound, "Unpause of an unknown ID", func() error {
			return h.s.Unpause(h.ctx, "b", t0, time.Time{}, nil)
		})
	})
}
