package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// running returns tr as claim c, getting the given token, leaves it
// (Recovered aside).
func running(tr trigger.Trigger, c trigger.Claim, token uint64) trigger.Trigger {
	tr.State = trigger.StateRunning
	tr.Owner, tr.LeaseUntil, tr.Token = c.Owner, c.Until, token
	tr.Attempt++
	tr.UpdatedAt = c.Now
	return tr
}

// expectClaim claims id with c and checks the result against the trigger
// before the claim, the recovered flag, and the stored trigger.
func (h *harness) expectClaim(id string, c trigger.Claim, recovered bool) trigger.Trigger {
	h.Helper()
	prev := h.get(id)
	got := h.claim(id, c)
	if got.Token <= prev.Token {
		h.Errorf("claim of %q: token %d, not above the previous %d", id, got.Token, prev.Token)
	}
	if d := diff(running(prev, c, got.Token), got); d != "" {
		h.Errorf("claim of %q returned an unexpected trigger:%s", id, d)
	}
	if got.Recovered != recovered {
		h.Errorf("claim of %q: Recovered = %v, want %v", id, got.Recovered, recovered)
	}
	h.expect(got)
	return got
}

func (s suite) claim(t *testing.T) {
	s.test(t, "LeasesADueTrigger", func(h *harness) {
		h.save(full("a")) // due at 1h
		h.expectClaim("a", lease("w1", at(time.Hour)), false)
	})
	s.test(t, "NotDue", func(h *harness) {
		h.save(plain("a", at(time.Second)))
		h.changesNothing(trigger.ErrNotDue, "claim 1ms before the due time", func() error {
			_, err := h.s.Claim(h.ctx, "a", lease("w1", at(time.Second-time.Millisecond)))
			return err
		})
	})
	s.test(t, "ForceClaimsANotDueTrigger", func(h *harness) {
		h.save(plain("a", at(time.Hour)))
		c := lease("w1", t0)
		c.Force = true
		h.expectClaim("a", c, false)
	})
	s.test(t, "WaitingNeedsForce", func(h *harness) {
		h.save(waiting("a"))
		c := lease("w1", t0)
		h.changesNothing(trigger.ErrNotDue, "claim of a waiting trigger without Force", func() error {
			_, err := h.s.Claim(h.ctx, "a", c)
			return err
		})
		c.Force = true
		h.expectClaim("a", c, false)
	})
	s.test(t, "Retrying", func(h *harness) {
		h.inState("a", trigger.StateRetrying) // due at 1h
		h.changesNothing(trigger.ErrNotDue, "claim of a retrying trigger before its due time", func() error {
			_, err := h.s.Claim(h.ctx, "a", lease("w2", at(time.Hour-time.Millisecond)))
			return err
		})
		h.expectClaim("a", lease("w2", at(time.Hour)), false)
	})
	s.test(t, "LiveLease", func(h *harness) {
		h.save(plain("a", t0))
		h.claim("a", lease("w1", t0)) // until 1m
		now := at(leaseFor - time.Millisecond)
		for _, c := range []trigger.Claim{
			lease("w2", now),
			lease("w1", now),
			{Owner: "w2", Now: now, Until: now.Add(time.Hour), Force: true},
		} {
			h.changesNothing(trigger.ErrClaimed, fmt.Sprintf("claim %+v of a trigger leased until %v", c, at(leaseFor)), func() error {
				_, err := h.s.Claim(h.ctx, "a", c)
				return err
			})
		}
	})
	s.test(t, "ExpiredLeaseIsRecovered", func(h *harness) {
		h.save(plain("a", t0))
		h.expectClaim("a", lease("w1", t0), false)
		h.expectClaim("a", lease("w2", at(leaseFor)), true)
	})
	s.test(t, "TokenGrowsOnEveryClaim", func(h *harness) {
		// expectClaim checks the growth; this walks every path back to a claim.
		h.save(plain("a", t0))
		c := h.expectClaim("a", lease("w1", t0), false)
		c = h.expectClaim("a", lease("w2", c.LeaseUntil), true)
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeSnooze, Now: at(2 * time.Minute), At: at(2 * time.Minute)})
		c = h.expectClaim("a", lease("w1", at(2*time.Minute)), false)
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(3 * time.Minute), At: at(3 * time.Minute)})
		c = h.expectClaim("a", lease("w1", at(3*time.Minute)), false)
		h.cancel("a", at(4*time.Minute))
		h.is(h.s.Requeue(h.ctx, "a", at(4*time.Minute), at(4*time.Minute)), nil, "Requeue")
		c = h.expectClaim("a", lease("w1", at(4*time.Minute)), false)
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeFail, Now: at(5 * time.Minute)})
		h.is(h.s.Requeue(h.ctx, "a", at(5*time.Minute), at(5*time.Minute)), nil, "Requeue")
		h.expectClaim("a", lease("w1", at(5*time.Minute)), false)
	})
	s.test(t, "FinalStates", func(h *harness) {
		for _, st := range []trigger.State{trigger.StateCompleted, trigger.StateFailed, trigger.StateCanceled} {
			h.inState(st.String(), st)
			for _, force := range []bool{false, true} {
				c := lease("w2", at(time.Hour))
				c.Force = force
				h.changesNothing(trigger.ErrInvalidState, fmt.Sprintf("claim of a %s trigger (Force %v)", st, force), func() error {
					_, err := h.s.Claim(h.ctx, st.String(), c)
					return err
				})
			}
		}
	})
	s.test(t, "NotFound", func(h *harness) {
		h.save(plain("a", t0))
		h.changesNothing(trigger.ErrNotFound, "claim of an unknown ID", func() error {
			_, err := h.s.Claim(h.ctx, "b", lease("w1", t0))
			return err
		})
	})
	s.test(t, "ConcurrentClaimsHaveOneWinner", func(h *harness) {
		h.save(plain("a", t0))
		owner := func(i int) string { return fmt.Sprintf("w%d", i) }
		errs := together(32, func(i int) error {
			_, err := h.s.Claim(h.ctx, "a", lease(owner(i), t0))
			return err
		})
		w := h.oneWins(errs, trigger.ErrClaimed, "32 concurrent claims of one trigger")
		if got := h.get("a"); got.Owner != owner(w) || got.Attempt != 1 {
			h.Errorf("after the race the trigger has owner %q and attempt %d; want %q and 1", got.Owner, got.Attempt, owner(w))
		}
	})
}

func (s suite) extend(t *testing.T) {
	s.test(t, "MovesTheLease", func(h *harness) {
		h.save(plain("a", t0))
		c := h.claim("a", lease("w1", t0)) // until 1m
		h.is(h.s.Extend(h.ctx, "a", c.Token, at(30*time.Second), at(2*time.Minute)), nil, "Extend")
		c.LeaseUntil, c.UpdatedAt = at(2*time.Minute), at(30*time.Second)
		h.expect(c)
		h.changesNothing(trigger.ErrClaimed, "claim at the old lease deadline", func() error {
			_, err := h.s.Claim(h.ctx, "a", lease("w2", at(time.Minute)))
			return err
		})
		h.expectDue(trigger.DueQuery{Now: at(time.Minute), Until: at(time.Minute), Limit: 10})
		h.expectDue(trigger.DueQuery{Now: at(2 * time.Minute), Until: at(2 * time.Minute), Limit: 10}, ref("a", at(2*time.Minute), 0))
	})
	s.test(t, "StaleToken", func(h *harness) {
		h.save(plain("a", t0))
		old := h.claim("a", lease("w1", t0))
		cur := h.claim("a", lease("w2", old.LeaseUntil))
		for _, token := range []uint64{old.Token, cur.Token + 1} {
			h.changesNothing(trigger.ErrLeaseLost, fmt.Sprintf("Extend with token %d (current %d)", token, cur.Token), func() error {
				return h.s.Extend(h.ctx, "a", token, at(90*time.Second), at(time.Hour))
			})
		}
	})
	s.test(t, "NotRunning", func(h *harness) {
		h.save(plain("scheduled", t0))
		h.changesNothing(trigger.ErrLeaseLost, "Extend of a trigger never claimed", func() error {
			return h.s.Extend(h.ctx, "scheduled", 0, t0, at(time.Hour))
		})
		done := h.inState("completed", trigger.StateCompleted)
		h.changesNothing(trigger.ErrLeaseLost, "Extend of a finished run", func() error {
			return h.s.Extend(h.ctx, "completed", done.Token, at(2*time.Second), at(time.Hour))
		})
		h.changesNothing(trigger.ErrLeaseLost, "Extend of an unknown ID", func() error {
			return h.s.Extend(h.ctx, "unknown", 1, at(2*time.Second), at(time.Hour))
		})
	})
}
