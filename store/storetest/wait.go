package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// The cases of trigger.WaitStore: waits for a time, a token and children,
// resumes (before and after the waiter parks, twice, too late), batches,
// follow-ups that wait for a key, checkpoints, token purges and bad input.
// They run when the store implements trigger.WaitStore, and are skipped
// otherwise.
//
// Token purges: PurgeTokens compares its cutoff with the time of a token's
// last change (the early resume, the park or save that bound it, the
// delivery), never with a duplicate or too-late resume's. Once a token is
// purged its key is new: a resume of it, even a duplicate of one delivered
// before, is stored (ResumeStored) and changes no trigger. A token a
// trigger waits for is kept however old, paused or past its timeout.

// waitTest is test for a case of WaitStore: it is skipped, before it does
// anything, when the store is not one.
func (s suite) waitTest(t *testing.T, name string, f func(h *harness)) {
	t.Helper()
	s.test(t, name, func(h *harness) {
		h.ws()
		f(h)
	})
}

// ws returns the store as a WaitStore, skipping the test if it is not one.
// Call it from the test's goroutine.
func (h *harness) ws() trigger.WaitStore {
	h.Helper()
	ws, ok := h.s.(trigger.WaitStore)
	if !ok {
		h.Skipf("%T does not implement trigger.WaitStore", h.s)
	}
	return ws
}

func (h *harness) park(id string, token uint64, p trigger.Park) time.Time {
	h.Helper()
	due, err := h.ws().Park(h.ctx, id, token, p)
	if err != nil {
		h.Fatalf("Park(%q, %d, %v): %v", id, token, p.Kind, err)
	}
	return due
}

// purgeTokens runs PurgeTokens and returns how many it deleted.
func (h *harness) purgeTokens(before time.Time, limit int) int {
	h.Helper()
	n, err := h.ws().PurgeTokens(h.ctx, before, limit)
	if err != nil {
		h.Fatalf("PurgeTokens(%v, %d): %v", before, limit, err)
	}
	return n
}

// purged checks that PurgeTokens(before, limit) deletes want tokens.
func (h *harness) purged(before time.Time, limit, want int) {
	h.Helper()
	if n := h.purgeTokens(before, limit); n != want {
		h.Fatalf("PurgeTokens(%v, %d) deleted %d tokens, want %d", before.Sub(t0), limit, n, want)
	}
}

func (h *harness) resume(now time.Time, key string, p trigger.Payload, want trigger.ResumeResult) string {
	h.Helper()
	res, id, err := h.ws().Resume(h.ctx, now, key, p)
	if err != nil {
		h.Fatalf("Resume(%q): %v", key, err)
	}
	if res != want {
		h.Fatalf("Resume(%q) = %v, want %v", key, res, want)
	}
	return id
}

// running saves a plain trigger id with payload {"step": 1} and claims it
// at t0.
func (h *harness) running(id string) trigger.Trigger {
	h.Helper()
	tr := plain(id, t0)
	tr.Payload = trigger.Payload{"step": 1.0, "keep": "x"}
	h.save(tr)
	return h.claim(id, lease("w1", t0))
}

// parked returns the running trigger c as Park p leaves it while it waits.
func parked(c trigger.Trigger, p trigger.Park) trigger.Trigger {
	c.Owner, c.LeaseUntil, c.UpdatedAt, c.Attempt = "", time.Time{}, p.Now, 0
	c.Wait = trigger.Wait{Kind: p.Kind, Until: p.Until, Pending: len(p.Children)}
	switch p.Kind {
	case trigger.WaitKindTime:
		c.State, c.DueAt = trigger.StateScheduled, p.Until
	case trigger.WaitKindToken:
		c.State, c.DueAt, c.WaitKey = trigger.StateWaiting, p.Until, p.Key
	case trigger.WaitKindChildren:
		c.State, c.DueAt = trigger.StateWaiting, time.Time{}
	}
	return c
}

func (s suite) waits(t *testing.T) {
	s.waitTest(t, "TimeWait", func(h *harness) {
		c := h.running("a")
		p := trigger.Park{Kind: trigger.WaitKindTime, Now: at(time.Second), Until: at(time.Hour)}
		if due := h.park("a", c.Token, p); !due.Equal(at(time.Hour)) {
			h.Fatalf("Park returned due %v, want %v", due, at(time.Hour))
		}
		h.expect(parked(c, p))
		if _, err := h.s.Claim(h.ctx, "a", lease("w2", at(time.Minute))); !errors.Is(err, trigger.ErrNotDue) {
			h.Fatalf("claim before the wait ends: %v, want ErrNotDue", err)
		}
		if ids := h.dueIDs(at(time.Hour), at(time.Hour)); len(ids) != 1 || ids[0] != "a" {
			h.Fatalf("Due at the wait's end = %v, want [a]", ids)
		}
		if r := h.claim("a", lease("w2", at(time.Hour))); r.Wait != p0(p) || r.Attempt != 1 {
			h.Fatalf("claimed after the wait: Wait %+v attempt %d", r.Wait, r.Attempt)
		}
	})

	s.waitTest(t, "TokenWaitAndResume", func(h *harness) {
		c := h.running("a")
		p := trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok"}
		if due := h.park("a", c.Token, p); !due.IsZero() {
			h.Fatalf("Park returned due %v, want none", due)
		}
		h.expect(parked(c, p))
		if ws := h.list(trigger.ListQuery{State: trigger.StateWaiting, Limit: 10}); len(ws) != 1 || ws[0].ID != "a" {
			h.Fatalf("waiting triggers = %v, want [a]", ws)
		}
		if ids := h.dueIDs(at(24*time.Hour), at(24*time.Hour)); len(ids) != 0 {
			h.Fatalf("a token wait without timeout is due: %v", ids)
		}
		if id := h.resume(at(2*time.Second), "tok", trigger.Payload{"input": "yes", "step": 2.0}, trigger.ResumeDelivered); id != "a" {
			h.Fatalf("Resume delivered to %q, want a", id)
		}
		want := parked(c, p)
		want.State, want.DueAt, want.UpdatedAt, want.Wait.Resumed = trigger.StateScheduled, at(2*time.Second), at(2*time.Second), true
		want.Payload = trigger.Payload{"step": 2.0, "keep": "x", "input": "yes"}
		h.expect(want)
		h.changesNothing(nil, "second Resume", func() error {
			res, _, err := h.ws().Resume(h.ctx, at(3*time.Second), "tok", trigger.Payload{"input": "no"})
			if err == nil && res != trigger.ResumeDuplicate {
				err = fmt.Errorf("result %v, want duplicate", res)
			}
			return err
		})
		r := h.claim("a", lease("w2", at(2*time.Second)))
		if !r.Wait.Resumed || r.Payload["input"] != "yes" {
			h.Fatalf("claimed after the resume: %+v", r)
		}
	})

	s.waitTest(t, "ResumeBeforePark", func(h *harness) {
		h.resume(at(time.Second), "tok", trigger.Payload{"input": "early"}, trigger.ResumeStored)
		h.changesNothing(nil, "second early Resume", func() error {
			res, _, err := h.ws().Resume(h.ctx, at(time.Second), "tok", nil)
			if err == nil && res != trigger.ResumeDuplicate {
				err = fmt.Errorf("result %v, want duplicate", res)
			}
			return err
		})
		c := h.running("a")
		p := trigger.Park{Kind: trigger.WaitKindToken, Now: at(2 * time.Second), Key: "tok", Until: at(time.Hour)}
		if due := h.park("a", c.Token, p); !due.Equal(at(2 * time.Second)) {
			h.Fatalf("Park on a resumed key returned due %v, want its time", due)
		}
		want := parked(c, p)
		want.State, want.DueAt, want.Wait.Resumed = trigger.StateScheduled, at(2*time.Second), true
		want.Payload = trigger.Payload{"step": 1.0, "keep": "x", "input": "early"}
		h.expect(want)
		h.resume(at(3*time.Second), "tok", nil, trigger.ResumeDuplicate)
	})

	s.waitTest(t, "TimeoutOnce", func(h *harness) {
		c := h.running("a")
		p := trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok", Until: at(time.Minute)}
		if due := h.park("a", c.Token, p); !due.Equal(at(time.Minute)) {
			h.Fatalf("Park returned due %v, want the timeout", due)
		}
		h.expect(parked(c, p))
		if _, err := h.s.Claim(h.ctx, "a", lease("w2", at(30*time.Second))); !errors.Is(err, trigger.ErrNotDue) {
			h.Fatalf("claim before the timeout: %v, want ErrNotDue", err)
		}
		if ids := h.dueIDs(at(time.Minute), at(time.Minute)); len(ids) != 1 {
			h.Fatalf("Due at the timeout = %v, want [a]", ids)
		}
		errs := together(8, func(int) error {
			_, err := h.s.Claim(h.ctx, "a", lease("w2", at(time.Minute)))
			return err
		})
		h.oneWins(errs, trigger.ErrClaimed, "claims at the timeout")
		h.resume(at(time.Minute+time.Second), "tok", nil, trigger.ResumeTooLate)
		r := h.get("a")
		if r.State != trigger.StateRunning || r.Wait.Resumed {
			h.Fatalf("after the timeout: %+v", r)
		}
		h.finish("a", r.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(2 * time.Minute)})
		h.resume(at(3*time.Minute), "tok", nil, trigger.ResumeTooLate)
	})

	s.waitTest(t, "KeyTaken", func(h *harness) {
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok"})
		d := h.running("b")
		h.changesNothing(trigger.ErrDuplicate, "Park on a key another trigger waits for", func() error {
			_, err := h.ws().Park(h.ctx, "b", d.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok"})
			return err
		})
		h.changesNothing(trigger.ErrDuplicate, "Save of an event trigger for a taken key", func() error {
			return h.s.Save(h.ctx, t0, trigger.Trigger{ID: "c", Type: trigger.TypeEvent, WaitKey: "tok"})
		})
	})

	s.waitTest(t, "StaleToken", func(h *harness) {
		c := h.running("a")
		h.changesNothing(trigger.ErrLeaseLost, "Park with a stale token", func() error {
			_, err := h.ws().Park(h.ctx, "a", c.Token+1, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second), Children: []trigger.Trigger{plain("k", t0)}})
			return err
		})
		h.changesNothing(trigger.ErrLeaseLost, "Checkpoint with a stale token", func() error {
			return h.ws().Checkpoint(h.ctx, "a", c.Token+1, at(time.Second), trigger.Payload{"x": 1.0})
		})
	})

	s.waitTest(t, "EventTriggerWithKey", func(h *harness) {
		h.save(trigger.Trigger{ID: "a", Type: trigger.TypeEvent, WaitKey: "order-1", Payload: trigger.Payload{"n": 1.0}})
		a := h.get("a")
		if a.State != trigger.StateWaiting || a.Wait.Kind != trigger.WaitKindToken {
			h.Fatalf("saved event trigger: %+v", a)
		}
		h.resume(at(time.Second), "order-1", trigger.Payload{"paid": true}, trigger.ResumeDelivered)
		a = h.get("a")
		if a.State != trigger.StateScheduled || !a.DueAt.Equal(at(time.Second)) || a.Payload["paid"] != true || a.Payload["n"] != 1.0 {
			h.Fatalf("resumed event trigger: %+v", a)
		}
		// A resume that comes first ends the wait as the trigger is saved.
		h.resume(at(time.Second), "order-2", trigger.Payload{"paid": true}, trigger.ResumeStored)
		if err := h.s.Save(h.ctx, at(2*time.Second), trigger.Trigger{ID: "b", Type: trigger.TypeEvent, WaitKey: "order-2"}); err != nil {
			h.Fatal(err)
		}
		b := h.get("b")
		if b.State != trigger.StateScheduled || !b.DueAt.Equal(at(2*time.Second)) || !b.Wait.Resumed || b.Payload["paid"] != true {
			h.Fatalf("event trigger saved after its resume: %+v", b)
		}
		// Follow-ups bind their keys in the same write as the outcome.
		c := h.running("c")
		h.finish("c", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(3 * time.Second),
			FollowUps: []trigger.Trigger{{ID: "c-next", Type: trigger.TypeManual, WaitKey: "approve-c"}}})
		h.resume(at(4*time.Second), "approve-c", trigger.Payload{"ok": true}, trigger.ResumeDelivered)
		if f := h.get("c-next"); f.State != trigger.StateScheduled || f.Payload["ok"] != true {
			h.Fatalf("follow-up resumed: %+v", f)
		}
	})

	s.waitTest(t, "Children", func(h *harness) {
		c := h.running("p")
		kids := []trigger.Trigger{plain("k1", t0), plain("k2", at(time.Hour)), waiting("k3")}
		kids[0].ParentInstanceID = "parent-instance"
		p := trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second), Children: kids}
		h.park("p", c.Token, p)
		h.expect(parked(c, p))
		for _, k := range kids {
			want := stored(k, at(time.Second))
			want.ParentID = "p"
			h.expect(want)
		}
		k1 := h.claim("k1", lease("w", at(time.Second)))
		h.finish("k1", k1.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(2 * time.Second), Payload: trigger.Payload{"ignored": true}})
		k2 := h.claim("k2", trigger.Claim{Owner: "w", Now: at(2 * time.Second), Until: at(time.Hour), Force: true})
		h.finish("k2", k2.Token, trigger.Outcome{Kind: trigger.OutcomeFail, Now: at(3 * time.Second), Error: "bad"})
		if got := h.get("p"); got.State != trigger.StateWaiting || got.Wait.Pending != 1 {
			h.Fatalf("parent with one child left: %+v", got)
		}
		// A failed child sent back and failed again counts once.
		if err := h.s.Requeue(h.ctx, "k2", at(4*time.Second), at(4*time.Second)); err != nil {
			h.Fatal(err)
		}
		k2 = h.claim("k2", lease("w", at(4*time.Second)))
		h.finish("k2", k2.Token, trigger.Outcome{Kind: trigger.OutcomeFail, Now: at(5 * time.Second), Error: "bad again"})
		if got := h.get("p"); got.State != trigger.StateWaiting || got.Wait.Pending != 1 {
			h.Fatalf("parent after a child failed twice: %+v", got)
		}
		h.cancel("k3", at(6*time.Second))
		got := h.get("p")
		if got.State != trigger.StateScheduled || !got.DueAt.Equal(at(6*time.Second)) || got.Wait.Pending != 0 || got.Wait.Kind != trigger.WaitKindChildren {
			h.Fatalf("parent after its last child: %+v", got)
		}
		children, err := h.ws().Children(h.ctx, "p")
		if err != nil {
			h.Fatal(err)
		}
		var states []string
		for _, k := range children {
			states = append(states, k.ID+":"+k.State.String())
		}
		if fmt.Sprint(states) != "[k1:completed k2:failed k3:canceled]" {
			h.Fatalf("Children = %v", states)
		}
		if none, err := h.ws().Children(h.ctx, "k1"); err != nil || len(none) != 0 {
			h.Fatalf("Children of a trigger without any = %v, %v", none, err)
		}
	})

	s.waitTest(t, "BatchAtomic", func(h *harness) {
		h.save(plain("taken", t0))
		c := h.running("p")
		h.changesNothing(trigger.ErrDuplicate, "Park with a child whose ID exists", func() error {
			_, err := h.ws().Park(h.ctx, "p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second),
				Children: []trigger.Trigger{plain("k1", t0), plain("taken", t0)}})
			return err
		})
		h.changesNothing(trigger.ErrInvalid, "Park with an invalid child", func() error {
			_, err := h.ws().Park(h.ctx, "p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second),
				Children: []trigger.Trigger{plain("k1", t0), {ID: "k2"}}})
			return err
		})
	})

	s.waitTest(t, "ChildrenFinishConcurrently", func(h *harness) {
		const n = 100
		c := h.running("p")
		kids := make([]trigger.Trigger, n)
		for i := range kids {
			kids[i] = plain(fmt.Sprintf("k%03d", i), t0)
		}
		h.park("p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second), Children: kids})
		order := rand.Perm(n)
		errs := together(n, func(i int) error {
			id := kids[order[i]].ID
			k, err := h.s.Claim(h.ctx, id, lease("w", at(time.Second)))
			if err != nil {
				return err
			}
			return h.s.Finish(h.ctx, id, k.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(2 * time.Second)})
		})
		for _, err := range errs {
			if err != nil {
				h.Fatal(err)
			}
		}
		if p := h.get("p"); p.State != trigger.StateScheduled || p.Wait.Pending != 0 {
			h.Fatalf("parent after all children: %+v", p)
		}
	})

	// A parent leaves a children wait before its children end, in each of
	// the ways the contract has: it is fired (a forced claim), canceled and
	// sent back, planned anew by a registration that changes its schedule,
	// or deleted and saved again under its ID. Each time it then parks on a
	// new batch. The children of the wait it left count in no later wait:
	// however they end, the parent waits for exactly its new batch, and
	// Children lists the batch of its last wait.
	for _, leave := range []struct {
		name string
		// run takes p, waiting for a1 to a4 since 1s, out of that wait at
		// 2s and returns it claimed again.
		run func(h *harness) trigger.Trigger
	}{
		{"Fire", func(h *harness) trigger.Trigger {
			return h.claim("p", trigger.Claim{Owner: "w", Now: at(2 * time.Second), Until: at(time.Hour), Force: true})
		}},
		{"CancelAndRequeue", func(h *harness) trigger.Trigger {
			h.cancel("p", at(2*time.Second))
			if err := h.s.Requeue(h.ctx, "p", at(2*time.Second), at(2*time.Second)); err != nil {
				h.Fatal(err)
			}
			return h.claim("p", lease("w", at(2*time.Second)))
		}},
		{"Register", func(h *harness) trigger.Trigger {
			h.register(at(2*time.Second), cron("p", "* * * * *", at(2*time.Second)), trigger.RegisterUpdated)
			return h.claim("p", lease("w", at(2*time.Second)))
		}},
		{"DeleteAndSaveAgain", func(h *harness) trigger.Trigger {
			if err := h.s.Delete(h.ctx, "p"); err != nil {
				h.Fatal(err)
			}
			if err := h.s.Save(h.ctx, at(2*time.Second), plain("p", at(2*time.Second))); err != nil {
				h.Fatal(err)
			}
			return h.claim("p", lease("w", at(2*time.Second)))
		}},
	} {
		s.waitTest(t, "AbandonedChildren/"+leave.name, func(h *harness) {
			c := h.running("p")
			h.park("p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second),
				Children: []trigger.Trigger{plain("a1", t0), plain("a2", t0), waiting("a3"), plain("a4", t0)}})
			c = leave.run(h)
			h.endChild("a1", at(3*time.Second), "complete") // while the parent runs
			h.park("p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(4 * time.Second),
				Children: []trigger.Trigger{plain("b1", at(time.Hour)), waiting("b2")}})
			if got := h.children("p"); got != "[b1:scheduled b2:waiting]" {
				h.Errorf("Children of the parent waiting for its new batch = %v", got)
			}
			for i, end := range []string{"fail", "cancel", "delete"} {
				id := fmt.Sprint("a", i+2)
				h.endChild(id, at(time.Duration(5+i)*time.Second), end)
				if got := h.get("p"); got.State != trigger.StateWaiting || got.Wait.Pending != 2 {
					h.Fatalf("parent after %s of the left wait ended (%s): %v, %d pending; want waiting for 2", id, end, got.State, got.Wait.Pending)
				}
			}
			h.endChild("b1", at(time.Hour), "complete")
			if got := h.get("p"); got.State != trigger.StateWaiting || got.Wait.Pending != 1 {
				h.Fatalf("parent after b1: %v, %d pending; want waiting for 1", got.State, got.Wait.Pending)
			}
			h.endChild("b2", at(2*time.Hour), "cancel")
			got := h.get("p")
			if got.State != trigger.StateScheduled || !got.DueAt.Equal(at(2*time.Hour)) || got.Wait.Pending != 0 || got.Wait.Kind != trigger.WaitKindChildren {
				h.Fatalf("parent after its last child: %+v", got)
			}
			if got := h.children("p"); got != "[b1:completed b2:canceled]" {
				h.Errorf("Children of the resumed parent = %v", got)
			}
		})
	}

	s.waitTest(t, "Checkpoint", func(h *harness) {
		c := h.running("a")
		if err := h.ws().Checkpoint(h.ctx, "a", c.Token, at(time.Second), trigger.Payload{"done": 5.0}); err != nil {
			h.Fatal(err)
		}
		want := c
		want.Payload, want.UpdatedAt = trigger.Payload{"done": 5.0}, at(time.Second)
		h.expect(want)
		// The run is cut off: the next claim starts from the checkpoint.
		r := h.claim("a", lease("w2", at(2*leaseFor)))
		if r.Payload["done"] != 5.0 {
			h.Fatalf("recovered run's payload = %v, want the checkpoint", r.Payload)
		}
	})

	s.waitTest(t, "RescheduleClearsWait", func(h *harness) {
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindTime, Now: at(time.Second), Until: at(time.Minute)})
		c = h.claim("a", lease("w", at(time.Minute)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(time.Minute), At: at(2 * time.Minute), Error: "e"})
		if got := h.get("a"); got.Wait.Kind != trigger.WaitKindTime {
			h.Fatalf("a retry lost the wait: %+v", got.Wait)
		}
		c = h.claim("a", lease("w", at(2*time.Minute)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(2 * time.Minute), At: at(time.Hour)})
		if got := h.get("a"); got.Wait != (trigger.Wait{}) {
			h.Fatalf("a reschedule kept the wait: %+v", got.Wait)
		}
	})

	s.waitTest(t, "SaveIgnoresWaitFields", func(h *harness) {
		tr := plain("a", t0)
		tr.ParentID, tr.Wait = "p", trigger.Wait{Kind: trigger.WaitKindChildren, Pending: 3}
		h.save(tr)
		h.expect(stored(plain("a", t0), t0))
	})

	s.waitTest(t, "ResumeRacingPark", func(h *harness) {
		const n = 50
		for i := range n {
			id := fmt.Sprint("a", i)
			c := h.running(id)
			key := "tok-" + id
			var res trigger.ResumeResult
			errs := together(2, func(g int) error {
				if g == 0 {
					_, err := h.ws().Park(h.ctx, id, c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: key})
					return err
				}
				var err error
				res, _, err = h.ws().Resume(h.ctx, at(time.Second), key, trigger.Payload{"v": float64(i)})
				return err
			})
			for _, err := range errs {
				if err != nil {
					h.Fatal(err)
				}
			}
			if res != trigger.ResumeDelivered && res != trigger.ResumeStored {
				h.Fatalf("%s: Resume racing Park = %v", id, res)
			}
			got := h.get(id)
			if got.State != trigger.StateScheduled || !got.Wait.Resumed || got.Payload["v"] != float64(i) {
				h.Fatalf("%s after Resume racing Park: %+v", id, got)
			}
			h.resume(at(2*time.Second), key, nil, trigger.ResumeDuplicate)
		}
	})

	s.waitTest(t, "PurgeTokensEarlyResume", func(h *harness) {
		h.resume(at(time.Second), "early", trigger.Payload{"n": 1.0}, trigger.ResumeStored)
		h.resume(at(time.Minute), "later", nil, trigger.ResumeStored)
		h.purged(at(time.Second), 10, 0) // changed at the cutoff, not before
		// A duplicate changes nothing, its time included.
		h.resume(at(2*time.Second), "early", nil, trigger.ResumeDuplicate)
		before := h.snapshot()
		h.purged(at(time.Second+time.Millisecond), 10, 1)
		h.unchanged(before, "PurgeTokens")
		h.resume(at(time.Hour), "later", nil, trigger.ResumeDuplicate)
		// A resume after the purge is new, and stored again: a waiter that
		// parks now gets it, not the purged one.
		h.resume(at(time.Hour), "early", trigger.Payload{"n": 2.0}, trigger.ResumeStored)
		c := h.running("a")
		p := trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Hour + time.Second), Key: "early"}
		if due := h.park("a", c.Token, p); !due.Equal(p.Now) {
			h.Fatalf("Park on a key resumed again after its purge returned due %v, want its time", due)
		}
		if a := h.get("a"); !a.Wait.Resumed || a.Payload["n"] != 2.0 {
			h.Fatalf("waiter after the purge: %+v", a)
		}
	})

	s.waitTest(t, "PurgeTokensDelivered", func(h *harness) {
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok"})
		h.resume(at(2*time.Second), "tok", trigger.Payload{"input": "yes"}, trigger.ResumeDelivered)
		// An early resume delivered as its waiter parks changed then.
		h.resume(at(time.Second), "early", nil, trigger.ResumeStored)
		d := h.running("b")
		h.park("b", d.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(10 * time.Second), Key: "early"})
		before := h.snapshot()
		h.purged(at(2*time.Second), 10, 0)
		h.purged(at(2*time.Second+time.Millisecond), 10, 1) // tok
		h.resume(at(time.Hour), "early", nil, trigger.ResumeDuplicate)
		h.purged(at(10*time.Second+time.Millisecond), 10, 1) // early
		h.unchanged(before, "PurgeTokens")
		// A duplicate of a purged delivery is new to the store: it is
		// stored, and changes no trigger.
		h.resume(at(time.Hour), "tok", trigger.Payload{"input": "again"}, trigger.ResumeStored)
		h.resume(at(time.Hour), "early", nil, trigger.ResumeStored)
		h.unchanged(before, "Resume of a purged token")
		h.purged(at(time.Hour+time.Millisecond), 10, 2)
	})

	s.waitTest(t, "PurgeTokensKeepsWaiters", func(h *harness) {
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok"})
		h.save(trigger.Trigger{ID: "e", Type: trigger.TypeEvent, WaitKey: "ek"}) // bound at t0
		// Paused past its timeout: it still waits, as nothing claimed it.
		d := h.running("p")
		h.park("p", d.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "pk", Until: at(time.Minute)})
		if err := h.s.Pause(h.ctx, "p", at(2*time.Second)); err != nil {
			h.Fatal(err)
		}
		far := at(10000 * time.Hour)
		before := h.snapshot()
		h.purged(far, 10, 0)
		h.unchanged(before, "PurgeTokens")
		for key, id := range map[string]string{"tok": "a", "ek": "e", "pk": "p"} {
			if got := h.resume(far, key, nil, trigger.ResumeDelivered); got != id {
				h.Fatalf("Resume(%q) delivered to %q, want %q", key, got, id)
			}
		}
		h.purged(far, 10, 0) // delivered at far
		h.purged(far.Add(time.Millisecond), 10, 3)
	})

	s.waitTest(t, "PurgeTokensMovedOn", func(h *harness) {
		// a waits for k1, is resumed, and waits for k2.
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "k1"})
		h.resume(at(2*time.Second), "k1", nil, trigger.ResumeDelivered)
		c = h.claim("a", lease("w", at(2*time.Second)))
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(3 * time.Second), Key: "k2"})
		// b's wait for kt timed out, and its run is retrying.
		d := h.running("b")
		h.park("b", d.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "kt", Until: at(time.Minute)})
		d = h.claim("b", lease("w", at(time.Minute)))
		h.finish("b", d.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(time.Minute), At: at(time.Hour), Error: "e"})
		h.resume(at(2*time.Minute), "kt", nil, trigger.ResumeTooLate)
		// g moved on from kg1 to kg2, and is gone.
		g := h.running("g")
		h.park("g", g.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "kg1"})
		h.resume(at(2*time.Second), "kg1", nil, trigger.ResumeDelivered)
		g = h.claim("g", lease("w", at(2*time.Second)))
		h.park("g", g.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(3 * time.Second), Key: "kg2"})
		if err := h.s.Delete(h.ctx, "g"); err != nil {
			h.Fatal(err)
		}
		before := h.snapshot()
		h.purged(at(time.Second), 10, 0) // kt changed as b parked, at 1s
		h.purged(at(time.Hour), 10, 3)   // k1, kt, kg1
		h.unchanged(before, "PurgeTokens")
		h.resume(at(time.Hour), "k2", nil, trigger.ResumeDelivered)
		for _, key := range []string{"k1", "kt", "kg1", "kg2"} {
			h.resume(at(time.Hour), key, nil, trigger.ResumeStored)
		}
	})

	s.waitTest(t, "PurgeTokensParkAgain", func(h *harness) {
		// a's wait for tok times out twice: its second park changed tok.
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "tok", Until: at(time.Minute)})
		c = h.claim("a", lease("w", at(time.Minute)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(time.Minute), At: at(2 * time.Minute), Error: "e"})
		c = h.claim("a", lease("w", at(2*time.Minute)))
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Hour), Key: "tok", Until: at(time.Hour + time.Minute)})
		c = h.claim("a", lease("w", at(time.Hour+time.Minute)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(time.Hour + time.Minute), At: at(2 * time.Hour), Error: "e"})
		// b's run asks again for d, delivered before: it is resumed at once,
		// and d changed then.
		d := h.running("b")
		h.park("b", d.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "d"})
		h.resume(at(2*time.Second), "d", nil, trigger.ResumeDelivered)
		d = h.claim("b", lease("w", at(2*time.Second)))
		if due := h.park("b", d.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Hour), Key: "d"}); !due.Equal(at(time.Hour)) {
			h.Fatalf("Park again on a key delivered to it returned due %v, want its time", due)
		}
		h.purged(at(time.Hour), 10, 0)
		h.purged(at(time.Hour+time.Millisecond), 10, 2)
	})

	s.waitTest(t, "PurgeTokensLimit", func(h *harness) {
		const n = 25
		for i := range n {
			h.resume(at(time.Second), fmt.Sprint("k", i), nil, trigger.ResumeStored)
		}
		c := h.running("a")
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(time.Second), Key: "waited"})
		h.purged(at(time.Hour), 10, 10)
		h.purged(at(time.Hour), 10, 10)
		h.purged(at(time.Hour), 10, 5)
		h.purged(at(time.Hour), 10, 0)
		for i := range n {
			h.resume(at(time.Hour), fmt.Sprint("k", i), nil, trigger.ResumeStored)
		}
		h.resume(at(time.Hour), "waited", nil, trigger.ResumeDelivered)
	})

	s.waitTest(t, "PurgeTokensInvalidInput", func(h *harness) {
		ws := h.ws()
		h.resume(at(time.Second), "early", nil, trigger.ResumeStored)
		for _, q := range []struct {
			name   string
			before time.Time
			limit  int
		}{
			{"zero cutoff", time.Time{}, 10},
			{"zero limit", at(time.Hour), 0},
			{"negative limit", at(time.Hour), -1},
		} {
			h.changesNothing(trigger.ErrInvalid, "PurgeTokens: "+q.name, func() error {
				n, err := ws.PurgeTokens(h.ctx, q.before, q.limit)
				if err == nil || n != 0 {
					return fmt.Errorf("deleted %d, error %v", n, err)
				}
				return err
			})
		}
		// The token is still there.
		h.resume(at(2*time.Second), "early", nil, trigger.ResumeDuplicate)
	})

	s.waitTest(t, "InvalidInput", func(h *harness) {
		ws := h.ws()
		c := h.running("a")
		for name, p := range map[string]trigger.Park{
			"no kind":            {Now: at(time.Second)},
			"no now":             {Kind: trigger.WaitKindTime, Until: at(time.Minute)},
			"time without until": {Kind: trigger.WaitKindTime, Now: at(time.Second)},
			"token without key":  {Kind: trigger.WaitKindToken, Now: at(time.Second)},
			"children empty":     {Kind: trigger.WaitKindChildren, Now: at(time.Second)},
			"children timeout":   {Kind: trigger.WaitKindChildren, Now: at(time.Second), Until: at(time.Minute), Children: []trigger.Trigger{plain("k", t0)}},
			"key on time wait":   {Kind: trigger.WaitKindTime, Now: at(time.Second), Until: at(time.Minute), Key: "k"},
			"until out of range": {Kind: trigger.WaitKindTime, Now: at(time.Second), Until: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
			"unserialisable child": {Kind: trigger.WaitKindChildren, Now: at(time.Second),
				Children: []trigger.Trigger{{ID: "k", Type: trigger.TypeNext, DueAt: t0, Payload: trigger.Payload{"f": func() {}}}}},
		} {
			h.changesNothing(trigger.ErrInvalid, "Park: "+name, func() error {
				_, err := ws.Park(h.ctx, "a", c.Token, p)
				return err
			})
		}
		h.changesNothing(trigger.ErrInvalid, "Park: empty ID", func() error {
			_, err := ws.Park(h.ctx, "", c.Token, trigger.Park{Kind: trigger.WaitKindTime, Now: at(time.Second), Until: at(time.Minute)})
			return err
		})
		h.changesNothing(trigger.ErrInvalid, "Resume: empty key", func() error {
			_, _, err := ws.Resume(h.ctx, at(time.Second), "", nil)
			return err
		})
		h.changesNothing(trigger.ErrInvalid, "Resume: zero now", func() error {
			_, _, err := ws.Resume(h.ctx, time.Time{}, "k", nil)
			return err
		})
		h.changesNothing(trigger.ErrInvalid, "Resume: unserialisable payload", func() error {
			_, _, err := ws.Resume(h.ctx, at(time.Second), "k", trigger.Payload{"c": make(chan int)})
			return err
		})
		h.changesNothing(trigger.ErrInvalid, "Checkpoint: unserialisable payload", func() error {
			return ws.Checkpoint(h.ctx, "a", c.Token, at(time.Second), trigger.Payload{"c": make(chan int)})
		})
		h.changesNothing(trigger.ErrInvalid, "Children: empty ID", func() error {
			_, err := ws.Children(h.ctx, "")
			return err
		})
		// The early resume refused above was not stored.
		h.resume(at(time.Second), "k", nil, trigger.ResumeStored)
	})
}

// p0 returns the Wait that Park p gives a trigger.
func p0(p trigger.Park) trigger.Wait {
	return trigger.Wait{Kind: p.Kind, Until: p.Until, Pending: len(p.Children)}
}

// endChild ends child id at now as end says: "complete" or "fail" (a run
// claimed with Force, so a child not yet due ends too), "cancel" or
// "delete".
func (h *harness) endChild(id string, now time.Time, end string) {
	h.Helper()
	switch end {
	case "complete", "fail":
		o := trigger.Outcome{Kind: trigger.OutcomeComplete, Now: now}
		if end == "fail" {
			o.Kind, o.Error = trigger.OutcomeFail, "e"
		}
		c := h.claim(id, trigger.Claim{Owner: "w", Now: now, Until: now.Add(leaseFor), Force: true})
		h.finish(id, c.Token, o)
	case "cancel":
		h.cancel(id, now)
	case "delete":
		if err := h.s.Delete(h.ctx, id); err != nil {
			h.Fatalf("Delete(%q): %v", id, err)
		}
	default:
		h.Fatalf("endChild(%q): unknown end %q", id, end)
	}
}

// children returns the children of parent as Children lists them, each as
// ID:state.
func (h *harness) children(parent string) string {
	h.Helper()
	cs, err := h.ws().Children(h.ctx, parent)
	if err != nil {
		h.Fatalf("Children(%q): %v", parent, err)
	}
	var states []string
	for _, c := range cs {
		states = append(states, c.ID+":"+c.State.String())
	}
	return fmt.Sprint(states)
}
