package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// The cases where waits meet the rest of the contract: the outcome of a run
// keeps what it checkpointed, a wait keeps PlannedAt and Paused, and
// Register leaves a wait in progress alone. They run with the Waits group.
func (s suite) waitsAndRecurring(t *testing.T) {
	s.waitTest(t, "OutcomeKeepsTheCheckpoint", func(h *harness) {
		cp := trigger.Payload{"done": 5.0}
		for i, o := range []trigger.Outcome{
			{Kind: trigger.OutcomeComplete, Now: at(2 * time.Second)},
			{Kind: trigger.OutcomeRetry, Now: at(2 * time.Second), At: at(time.Minute), Error: "e"},
			{Kind: trigger.OutcomeFail, Now: at(2 * time.Second), Error: "e"},
			{Kind: trigger.OutcomeSnooze, Now: at(2 * time.Second), At: at(time.Minute)},
			{Kind: trigger.OutcomeReschedule, Now: at(2 * time.Second), At: at(time.Minute)}, // a nil payload keeps the current one
		} {
			id := fmt.Sprint("a", i)
			c := h.running(id)
			if err := h.ws().Checkpoint(h.ctx, id, c.Token, at(time.Second), cp); err != nil {
				h.Fatal(err)
			}
			h.finish(id, c.Token, o)
			c.Payload = cp
			h.expect(finished(c, o))
		}
		// So does a wait.
		c := h.running("p")
		if err := h.ws().Checkpoint(h.ctx, "p", c.Token, at(time.Second), cp); err != nil {
			h.Fatal(err)
		}
		p := trigger.Park{Kind: trigger.WaitKindTime, Now: at(2 * time.Second), Until: at(time.Hour)}
		h.park("p", c.Token, p)
		c.Payload = cp
		h.expect(parked(c, p))
	})

	s.waitTest(t, "WaitKeepsPlannedAtAndPaused", func(h *harness) {
		h.register(t0, cron("a", "0 3 * * *", at(3*time.Hour)), trigger.RegisterCreated)
		c := h.claim("a", lease("w1", at(3*time.Hour)))
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(3 * time.Hour), At: at(4 * time.Hour), Error: "e"})
		c = h.claim("a", lease("w1", at(4*time.Hour)))
		h.pause("a", at(4*time.Hour+time.Second)) // during the run
		p := trigger.Park{Kind: trigger.WaitKindToken, Now: at(4*time.Hour + 2*time.Second), Key: "approve-a", Until: at(5 * time.Hour)}
		h.park("a", c.Token, p)
		want := parked(c, p)
		want.Paused = true
		h.expect(want)
		if !want.PlannedAt.Equal(at(3 * time.Hour)) {
			h.Fatalf("the claim's PlannedAt is %v, want the occurrence", want.PlannedAt)
		}
		h.notDue("a") // paused: not due at its timeout
		h.resume(at(4*time.Hour+time.Minute), "approve-a", trigger.Payload{"ok": true}, trigger.ResumeDelivered)
		got := h.get("a")
		if got.State != trigger.StateScheduled || !got.Paused || !got.PlannedAt.Equal(at(3*time.Hour)) || !got.DueAt.Equal(at(4*time.Hour+time.Minute)) || !got.Wait.Resumed {
			h.Fatalf("resumed while paused: %+v", got)
		}
		h.notDue("a")
		if err := h.s.Unpause(h.ctx, "a", at(4*time.Hour+2*time.Minute), time.Time{}, nil); err != nil {
			h.Fatal(err)
		}
		c = h.claim("a", lease("w1", at(4*time.Hour+2*time.Minute)))
		if !c.PlannedAt.Equal(at(3*time.Hour)) || c.Wait.Kind != trigger.WaitKindToken || !c.Wait.Resumed || c.Payload["ok"] != true {
			h.Fatalf("the run after the wait: %+v", c)
		}
		// Moving on to the next occurrence clears the wait.
		h.finish("a", c.Token, trigger.Outcome{Kind: trigger.OutcomeReschedule, Now: at(4*time.Hour + 3*time.Minute), At: at(27 * time.Hour)})
		if got := h.get("a"); got.Wait != (trigger.Wait{}) || !got.PlannedAt.Equal(at(27*time.Hour)) || got.Iteration != 1 {
			h.Fatalf("next occurrence: %+v", got)
		}
	})

	s.waitTest(t, "RegisterLeavesTheWait", func(h *harness) {
		def := cron("a", "0 3 * * *", at(3*time.Hour))
		h.register(t0, def, trigger.RegisterCreated)
		c := h.claim("a", lease("w1", at(3*time.Hour)))
		p := trigger.Park{Kind: trigger.WaitKindToken, Now: at(3*time.Hour + time.Second), Key: "approve-a"}
		h.park("a", c.Token, p)
		// Every replica registers again at start: the wait is not a change.
		again := def
		again.DueAt = at(27 * time.Hour)
		h.register(at(3*time.Hour+time.Minute), again, trigger.RegisterUnchanged)
		// Nor is a payload: in a wait it is the run's (its checkpoints and
		// resumes). Another change is, and leaves the wait, key, payload
		// and all.
		if err := h.ws().Checkpoint(h.ctx, "a", c.Token, at(3*time.Hour), trigger.Payload{"rows": 10.0}); err == nil {
			h.Fatal("Checkpoint after the park succeeded")
		}
		changed := again
		changed.Payload = trigger.Payload{"report": "weekly"}
		h.register(at(3*time.Hour+2*time.Minute), changed, trigger.RegisterUnchanged)
		changed.NodeID = "report-v2"
		h.register(at(3*time.Hour+2*time.Minute), changed, trigger.RegisterUpdated)
		want := parked(c, p)
		want.NodeID, want.UpdatedAt = "report-v2", at(3*time.Hour+2*time.Minute)
		h.expect(want)
		h.resume(at(3*time.Hour+3*time.Minute), "approve-a", trigger.Payload{"approved": true}, trigger.ResumeDelivered)
		if got := h.get("a"); got.State != trigger.StateScheduled || !got.Wait.Resumed || got.WaitKey != "approve-a" ||
			got.Payload["approved"] != true || got.Payload["report"] != "nightly" {
			h.Fatalf("resumed after the registrations: %+v", got)
		}
		// Its run goes on after the wait: the payload is still the run's.
		changed.Payload = trigger.Payload{"report": "monthly"}
		h.register(at(3*time.Hour+3*time.Minute), changed, trigger.RegisterUnchanged)
		// A changed spec plans the trigger anew: the wait is over.
		c = h.claim("a", lease("w1", at(3*time.Hour+3*time.Minute)))
		h.park("a", c.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(3*time.Hour + 4*time.Minute), Key: "approve-a2"})
		moved := cron("a", "0 4 * * *", at(4*time.Hour))
		h.register(at(3*time.Hour+5*time.Minute), moved, trigger.RegisterUpdated)
		got := h.get("a")
		if got.State != trigger.StateScheduled || got.Wait != (trigger.Wait{}) || !got.DueAt.Equal(at(4*time.Hour)) || !got.PlannedAt.Equal(at(4*time.Hour)) {
			h.Fatalf("after a changed spec: %+v", got)
		}
		h.resume(at(3*time.Hour+6*time.Minute), "approve-a2", nil, trigger.ResumeTooLate)
	})

	s.waitTest(t, "ChildCountsOnceAcrossRegister", func(h *harness) {
		// A child revived by a changed registration keeps its parent link,
		// and does not count in the parent's wait a second time.
		c := h.running("p")
		kid := cron("k1", "0 3 * * *", at(3*time.Hour))
		h.park("p", c.Token, trigger.Park{Kind: trigger.WaitKindChildren, Now: at(time.Second), Children: []trigger.Trigger{kid, plain("k2", at(time.Hour))}})
		h.cancel("k1", at(2*time.Second))
		kid.Payload = trigger.Payload{"report": "weekly"}
		h.register(at(3*time.Second), kid, trigger.RegisterUpdated)
		if got := h.get("k1"); got.ParentID != "p" || got.State != trigger.StateScheduled {
			h.Fatalf("child after Register: %+v", got)
		}
		h.cancel("k1", at(4*time.Second))
		if got := h.get("p"); got.State != trigger.StateWaiting || got.Wait.Pending != 1 {
			h.Fatalf("parent after one child ended twice: %+v", got)
		}
		h.cancel("k2", at(5*time.Second))
		if got := h.get("p"); got.State != trigger.StateScheduled || got.Wait.Pending != 0 || !got.DueAt.Equal(at(5*time.Second)) {
			h.Fatalf("parent after its last child: %+v", got)
		}
	})
}
