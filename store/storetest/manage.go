package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

var (
	final    = []trigger.State{trigger.StateCompleted, trigger.StateFailed, trigger.StateCanceled}
	notFinal = []trigger.State{trigger.StateScheduled, trigger.StateWaiting, trigger.StateRetrying, trigger.StateRunning}
)

func (s suite) cancel(t *testing.T) {
	for _, st := range notFinal {
		s.test(t, "From/"+st.String(), func(h *harness) {
			want := h.inState("a", st)
			h.cancel("a", at(10*time.Second))
			want.State, want.UpdatedAt = trigger.StateCanceled, at(10*time.Second)
			want.Owner, want.LeaseUntil = "", time.Time{}
			h.expect(want)
			h.expectDue(trigger.DueQuery{Now: at(24 * time.Hour), Until: at(24 * time.Hour), Limit: 10})
		})
	}
	s.test(t, "RunningOwnerLosesTheLease", func(h *harness) {
		c := h.inState("a", trigger.StateRunning)
		h.cancel("a", at(10*time.Second))
		h.changesNothing(trigger.ErrLeaseLost, "Extend after Cancel", func() error {
			return h.s.Extend(h.ctx, "a", c.Token, at(20*time.Second), at(time.Hour))
		})
		h.changesNothing(trigger.ErrLeaseLost, "Finish after Cancel", func() error {
			return h.s.Finish(h.ctx, "a", c.Token, outcome(trigger.OutcomeComplete))
		})
	})
	s.test(t, "CanceledIsANoOp", func(h *harness) {
		h.inState("a", trigger.StateCanceled)
		h.changesNothing(nil, "Cancel of a canceled trigger", func() error { return h.s.Cancel(h.ctx, "a", at(10*time.Second)) })
	})
	for _, st := range []trigger.State{trigger.StateCompleted, trigger.StateFailed} {
		s.test(t, "From/"+st.String(), func(h *harness) {
			h.inState("a", st)
			h.changesNothing(trigger.ErrInvalidState, "Cancel of a "+st.String()+" trigger", func() error {
				return h.s.Cancel(h.ctx, "a", at(10*time.Second))
			})
		})
	}
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrNotFound, "Cancel of an unknown ID", func() error { return h.s.Cancel(h.ctx, "b", t0) })
	})
}

func (s suite) requeue(t *testing.T) {
	for _, st := range []trigger.State{trigger.StateFailed, trigger.StateCanceled} {
		s.test(t, "From/"+st.String(), func(h *harness) {
			want := h.inState("a", st)
			h.is(h.s.Requeue(h.ctx, "a", at(10*time.Second), at(time.Hour)), nil, "Requeue")
			want.State, want.DueAt, want.PlannedAt, want.Attempt, want.UpdatedAt = trigger.StateScheduled, at(time.Hour), at(time.Hour), 0, at(10*time.Second)
			h.expect(want)
			h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), Limit: 10}, ref("a", at(time.Hour), 0))
			h.expectClaim("a", lease("w2", at(time.Hour)), false)
		})
	}
	for _, st := range []trigger.State{trigger.StateScheduled, trigger.StateWaiting, trigger.StateRetrying, trigger.StateRunning, trigger.StateCompleted} {
		s.test(t, "From/"+st.String(), func(h *harness) {
			h.inState("a", st)
			h.changesNothing(trigger.ErrInvalidState, "Requeue of a "+st.String()+" trigger", func() error {
				return h.s.Requeue(h.ctx, "a", at(10*time.Second), at(time.Hour))
			})
		})
	}
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrNotFound, "Requeue of an unknown ID", func() error { return h.s.Requeue(h.ctx, "b", t0, t0) })
	})
}

func (s suite) delete(t *testing.T) {
	for _, st := range trigger.States() {
		s.test(t, "From/"+st.String(), func(h *harness) {
			h.save(plain("other", t0))
			h.inState("a", st)
			h.is(h.s.Delete(h.ctx, "a"), nil, "Delete")
			h.absent("a")
			if ids := h.dueIDs(at(24*time.Hour), at(24*time.Hour)); !slices.Equal(ids, []string{"other"}) {
				h.Errorf("after Delete, Due returns %v, want [other]", ids)
			}
			if _, listed := h.snapshot()["a"]; listed {
				h.Errorf("after Delete, List(%s) still returns the trigger", st)
			}
			h.save(plain("a", t0)) // the ID is free again
		})
	}
	s.test(t, "RunningOwnerLosesTheLease", func(h *harness) {
		c := h.inState("a", trigger.StateRunning)
		h.is(h.s.Delete(h.ctx, "a"), nil, "Delete")
		h.changesNothing(trigger.ErrLeaseLost, "Finish after Delete", func() error {
			return h.s.Finish(h.ctx, "a", c.Token, outcome(trigger.OutcomeComplete))
		})
	})
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrNotFound, "Delete of an unknown ID", func() error { return h.s.Delete(h.ctx, "b") })
	})
}

func (s suite) list(t *testing.T) {
	s.test(t, "ByStateInIDOrder", func(h *harness) {
		want := map[trigger.State][]trigger.Trigger{}
		for _, n := range []int{3, 0, 4, 1, 2} {
			for _, st := range trigger.States() {
				tr := h.inState(fmt.Sprintf("%s-%d", st, n), st)
				want[st] = append(want[st], tr)
			}
		}
		for _, st := range trigger.States() {
			slices.SortFunc(want[st], func(a, b trigger.Trigger) int { return strings.Compare(a.ID, b.ID) })
			for _, page := range []int{1, 2, 5, 10} {
				got := h.listAll(st, page)
				if len(got) != len(want[st]) {
					h.Fatalf("List(%s) by pages of %d returned %d triggers, want %d", st, page, len(got), len(want[st]))
				}
				for i := range got {
					if d := diff(want[st][i], got[i]); d != "" {
						h.Errorf("List(%s) by pages of %d, item %d:%s", st, page, i, d)
					}
				}
			}
		}
	})
	s.test(t, "AfterAnIDNotStored", func(h *harness) {
		h.saveDue(ref("a", t0, 0), ref("c", t0, 0), ref("e", t0, 0))
		ts := h.list(trigger.ListQuery{State: trigger.StateScheduled, After: "b", Limit: 10})
		if len(ts) != 2 || ts[0].ID != "c" || ts[1].ID != "e" {
			h.Errorf("List after %q returned %d triggers, want c and e", "b", len(ts))
		}
	})
}

// finishedAt saves trigger id and completes it at now (or fails or cancels
// it, by state s).
func (h *harness) finishedAt(id string, s trigger.State, now time.Time) {
	h.Helper()
	h.save(plain(id, t0))
	if s == trigger.StateCanceled {
		h.cancel(id, now)
		return
	}
	kind := trigger.OutcomeComplete
	if s == trigger.StateFailed {
		kind = trigger.OutcomeFail
	}
	c := h.claim(id, lease("owner", t0))
	h.finish(id, c.Token, trigger.Outcome{Kind: kind, Now: now, Error: "boom"})
}

func (s suite) purge(t *testing.T) {
	for _, st := range final {
		s.test(t, "UpdatedBefore/"+st.String(), func(h *harness) {
			for _, other := range final {
				if other != st {
					h.finishedAt(other.String(), other, at(time.Second))
				}
			}
			h.save(plain("scheduled", t0))
			for i := 1; i <= 4; i++ {
				h.finishedAt(fmt.Sprint(i), st, at(time.Duration(i)*time.Second))
			}
			n, err := h.s.Purge(h.ctx, trigger.PurgeQuery{State: st, Before: at(3 * time.Second), Limit: 10})
			h.is(err, nil, "Purge")
			if n != 2 {
				h.Errorf("Purge of %s triggers updated before 3s deleted %d, want 2", st, n)
			}
			h.absent("1")
			h.absent("2")
			for _, id := range []string{"3", "4", "scheduled"} {
				h.get(id)
			}
			for _, other := range final {
				if other != st {
					h.get(other.String())
				}
			}
		})
	}
	s.test(t, "Limit", func(h *harness) {
		for i := 1; i <= 5; i++ {
			h.finishedAt(fmt.Sprint(i), trigger.StateCompleted, at(time.Duration(i)*time.Second))
		}
		q := trigger.PurgeQuery{State: trigger.StateCompleted, Before: at(time.Hour), Limit: 2}
		for _, want := range []int{2, 2, 1, 0} {
			n, err := h.s.Purge(h.ctx, q)
			h.is(err, nil, "Purge")
			if n != want {
				h.Fatalf("Purge with limit 2 deleted %d, want %d", n, want)
			}
		}
		if left := h.listAll(trigger.StateCompleted, 10); len(left) != 0 {
			h.Errorf("%d completed triggers left after purging them all", len(left))
		}
	})
}
