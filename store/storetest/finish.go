package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// finished returns the running trigger c as outcome o leaves it, following
// the documentation of OutcomeKind: o.Error is recorded by Retry and Fail,
// and by Reschedule when it is not empty; o.At only by Retry, Reschedule and
// Snooze (and as PlannedAt by Reschedule only); o.Payload only by
// Reschedule. Every outcome ends the claim: Owner and LeaseUntil are cleared,
// the token stays.
func finished(c trigger.Trigger, o trigger.Outcome) trigger.Trigger {
	c.Owner, c.LeaseUntil, c.UpdatedAt = "", time.Time{}, o.Now
	switch o.Kind {
	case trigger.OutcomeComplete:
		c.State = trigger.StateCompleted
	case trigger.OutcomeRetry:
		c.State, c.DueAt, c.LastError = trigger.StateRetrying, o.At, o.Error
	case trigger.OutcomeFail:
		c.State, c.LastError = trigger.StateFailed, o.Error
	case trigger.OutcomeReschedule:
		c.State, c.DueAt, c.PlannedAt, c.Attempt = trigger.StateScheduled, o.At, o.At, 0
		c.Iteration++
		if o.Payload != nil {
			c.Payload = o.Payload
		}
		if o.Error != "" {
			c.LastError = o.Error
		}
	case trigger.OutcomeSnooze:
		c.State, c.DueAt = trigger.StateScheduled, o.At
		c.Attempt--
	}
	return c
}

// claimedRun saves a trigger "a" that ran before (attempt 1, iteration 3,
// an old error and a payload), claims it at t0 and returns the claim.
func (h *harness) claimedRun() trigger.Trigger {
	h.Helper()
	tr := plain("a", t0)
	tr.Attempt, tr.Iteration, tr.LastError = 1, 3, "old error"
	tr.Payload = trigger.Payload{"old": 1.0}
	h.save(tr)
	return h.claim("a", lease("w1", t0))
}

var outcomeKinds = []trigger.OutcomeKind{
	trigger.OutcomeComplete, trigger.OutcomeRetry, trigger.OutcomeFail, trigger.OutcomeReschedule, trigger.OutcomeSnooze,
}

// outcome returns an outcome of kind k at 10s that sets every field, due at 1h.
func outcome(k trigger.OutcomeKind) trigger.Outcome {
	return trigger.Outcome{Kind: k, Now: at(10 * time.Second), At: at(time.Hour), Error: "new error", Payload: trigger.Payload{"new": 2.0}}
}

func (s suite) finish(t *testing.T) {
	type namedOutcome struct {
		name string
		o    trigger.Outcome
	}
	var outcomes []namedOutcome
	for _, k := range outcomeKinds {
		outcomes = append(outcomes, namedOutcome{k.String(), outcome(k)})
	}
	keep := outcome(trigger.OutcomeReschedule)
	keep.Payload, keep.Error = nil, ""
	outcomes = append(outcomes, namedOutcome{"reschedule-keeping-the-payload-and-error", keep})
	for _, c := range outcomes {
		s.test(t, "Outcome/"+c.name, func(h *harness) {
			run, o := h.claimedRun(), c.o
			h.finish("a", run.Token, o)
			h.expect(finished(run, o))
			if o.Kind == trigger.OutcomeComplete || o.Kind == trigger.OutcomeFail {
				h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(2 * time.Hour), Limit: 10})
				return
			}
			// Due at o.At, and claimable then, not before.
			h.expectDue(trigger.DueQuery{Now: o.At, Until: o.At.Add(-time.Millisecond), Limit: 10})
			h.expectDue(trigger.DueQuery{Now: o.At, Until: o.At, Limit: 10}, ref("a", o.At, 0))
			h.changesNothing(trigger.ErrNotDue, "claim before the new due time", func() error {
				_, err := h.s.Claim(h.ctx, "a", lease("w2", o.At.Add(-time.Millisecond)))
				return err
			})
			h.expectClaim("a", lease("w2", o.At), false)
		})
	}
	s.test(t, "SavesFollowUps", func(h *harness) {
		c := h.claimedRun()
		o := outcome(trigger.OutcomeComplete)
		o.FollowUps = []trigger.Trigger{full("f1"), plain("f2", at(time.Hour)), waiting("f3")}
		h.finish("a", c.Token, o)
		h.expect(finished(c, o))
		for _, f := range o.FollowUps {
			h.expect(stored(f, o.Now))
		}
	})
	for _, k := range outcomeKinds {
		s.test(t, "StaleToken/"+k.String(), func(h *harness) {
			old := h.claimedRun()
			cur := h.claim("a", lease("w2", old.LeaseUntil))
			o := outcome(k)
			o.FollowUps = []trigger.Trigger{plain("f", t0)}
			for _, token := range []uint64{old.Token, cur.Token + 1} {
				h.changesNothing(trigger.ErrLeaseLost, fmt.Sprintf("Finish %s with token %d (current %d)", k, token, cur.Token), func() error {
					return h.s.Finish(h.ctx, "a", token, o)
				})
			}
		})
	}
	s.test(t, "Twice", func(h *harness) {
		c := h.claimedRun()
		h.finish("a", c.Token, outcome(trigger.OutcomeComplete))
		h.changesNothing(trigger.ErrLeaseLost, "second Finish of one claim", func() error {
			return h.s.Finish(h.ctx, "a", c.Token, outcome(trigger.OutcomeRetry))
		})
	})
	s.test(t, "UnknownID", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrLeaseLost, "Finish of an unknown ID", func() error {
			return h.s.Finish(h.ctx, "b", 1, outcome(trigger.OutcomeComplete))
		})
	})

	// Refused outcomes change nothing, and leave the claim usable.
	badPayload := trigger.Payload{"c": make(chan int)}
	for _, c := range []struct {
		name      string
		followUps []trigger.Trigger
		payload   trigger.Payload
		want      error
	}{
		{"FollowUpWithAStoredID", []trigger.Trigger{plain("new", t0), plain("old", t0)}, nil, trigger.ErrDuplicate},
		{"FollowUpWithTheFinishedID", []trigger.Trigger{plain("a", at(time.Hour))}, nil, trigger.ErrDuplicate},
		{"FollowUpIDTwice", []trigger.Trigger{plain("new", t0), plain("new", at(time.Hour))}, nil, trigger.ErrDuplicate},
		{"InvalidFollowUp", []trigger.Trigger{plain("new", t0), {ID: "bad", Type: trigger.TypeTimer}}, nil, trigger.ErrInvalid},
		{"UnserialisableFollowUp", []trigger.Trigger{plain("new", t0), {ID: "bad", Type: trigger.TypeNext, DueAt: t0, Payload: badPayload}}, nil, trigger.ErrInvalid},
		{"UnserialisablePayload", nil, badPayload, trigger.ErrInvalid},
	} {
		s.test(t, "Refused/"+c.name, func(h *harness) {
			h.save(plain("old", t0))
			run := h.claimedRun()
			o := outcome(trigger.OutcomeReschedule)
			o.FollowUps = c.followUps
			if c.payload != nil {
				o.Payload = c.payload
			}
			h.changesNothing(c.want, "Finish "+c.name, func() error { return h.s.Finish(h.ctx, "a", run.Token, o) })
			h.finish("a", run.Token, outcome(trigger.OutcomeComplete))
		})
	}
}
