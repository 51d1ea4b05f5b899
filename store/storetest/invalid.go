package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// badTrigger is a trigger that fails Trigger.Validate, and what is wrong
// with it.
type badTrigger struct {
	input string
	tr    trigger.Trigger
}

func badTriggers() []badTrigger {
	with := func(input string, change func(*trigger.Trigger)) badTrigger {
		tr := plain("bad", t0)
		change(&tr)
		return badTrigger{input, tr}
	}
	bads := []badTrigger{
		with("an empty ID", func(t *trigger.Trigger) { t.ID = "" }),
		with("an ID of 256 bytes", func(t *trigger.Trigger) { t.ID = strings.Repeat("x", 256) }),
		with("type 0", func(t *trigger.Trigger) { t.Type = 0 }),
		with("type 99", func(t *trigger.Trigger) { t.Type = 99 }),
		with("a due time before 1970", func(t *trigger.Trigger) { t.DueAt = time.Unix(-1, 0) }),
		with("a due time in 2262", func(t *trigger.Trigger) { t.DueAt = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC) }),
		with("priority MaxPriority+1", func(t *trigger.Trigger) { t.Priority = trigger.MaxPriority + 1 }),
		with("priority MinPriority-1", func(t *trigger.Trigger) { t.Priority = trigger.MinPriority - 1 }),
		with("a negative attempt", func(t *trigger.Trigger) { t.Attempt = -1 }),
		with("negative MaxAttempts", func(t *trigger.Trigger) { t.MaxAttempts = -1 }),
		with("a negative iteration", func(t *trigger.Trigger) { t.Iteration = -1 }),
		with("misfire policy 9", func(t *trigger.Trigger) { t.Misfire = 9 }),
		with("a negative Delay", func(t *trigger.Trigger) { t.Delay = -time.Second }),
		with("a negative Interval", func(t *trigger.Trigger) { t.Interval = -time.Second }),
		with("negative MaxIterations", func(t *trigger.Trigger) { t.MaxIterations = -1 }),
	}
	for _, typ := range trigger.Types() {
		if typ != trigger.TypeManual && typ != trigger.TypeEvent {
			bads = append(bads, with("type "+typ.String()+" and no due time", func(t *trigger.Trigger) {
				t.Type, t.DueAt = typ, time.Time{}
			}))
		}
	}
	return bads
}

// call is one call of a store method with bad input.
type call struct {
	input string
	do    func() error
}

// rejects checks that every call fails with ErrInvalid and changes nothing.
func (h *harness) rejects(method string, calls ...call) {
	h.Helper()
	for _, c := range calls {
		h.changesNothing(trigger.ErrInvalid, method+" with "+c.input, c.do)
	}
}

// fixture fills the store with a scheduled trigger "s", a waiting "w", a
// failed "f" and a running "r", whose claim it returns.
func (h *harness) fixture() trigger.Trigger {
	h.Helper()
	h.inState("s", trigger.StateScheduled)
	h.inState("w", trigger.StateWaiting)
	h.inState("f", trigger.StateFailed)
	return h.inState("r", trigger.StateRunning)
}

func (s suite) invalidInput(t *testing.T) {
	s.test(t, "Save", func(h *harness) {
		h.fixture()
		var calls []call
		for _, b := range badTriggers() {
			calls = append(calls, call{"a trigger with " + b.input, func() error { return h.s.Save(h.ctx, t0, b.tr) }})
			calls = append(calls, call{"a batch holding a trigger with " + b.input, func() error {
				return h.s.SaveBatch(h.ctx, t0, []trigger.Trigger{plain("good", t0), b.tr})
			}})
		}
		calls = append(calls,
			call{"a zero now", func() error { return h.s.Save(h.ctx, time.Time{}, plain("good", t0)) }},
			call{"a batch at a zero now", func() error { return h.s.SaveBatch(h.ctx, time.Time{}, []trigger.Trigger{plain("good", t0)}) }},
		)
		h.rejects("Save", calls...)
	})
	s.test(t, "Get", func(h *harness) {
		h.fixture()
		h.rejects("Get", call{"an empty ID", func() error { _, err := h.s.Get(h.ctx, ""); return err }})
	})
	s.test(t, "Due", func(h *harness) {
		h.fixture()
		good := trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), Limit: 10}
		due := func(input string, change func(*trigger.DueQuery)) call {
			q := good
			change(&q)
			return call{input, func() error { _, err := h.s.Due(h.ctx, q); return err }}
		}
		h.rejects("Due",
			due("limit 0", func(q *trigger.DueQuery) { q.Limit = 0 }),
			due("limit -1", func(q *trigger.DueQuery) { q.Limit = -1 }),
			due("a zero Now", func(q *trigger.DueQuery) { q.Now = time.Time{} }),
			due("a zero Until", func(q *trigger.DueQuery) { q.Until = time.Time{} }),
		)
	})
	s.test(t, "Claim", func(h *harness) {
		h.fixture()
		claim := func(input, id string, change func(*trigger.Claim)) call {
			c := lease("w2", at(time.Hour))
			change(&c)
			return call{input, func() error { _, err := h.s.Claim(h.ctx, id, c); return err }}
		}
		same := func(*trigger.Claim) {}
		h.rejects("Claim",
			claim("an empty ID", "", same),
			claim("an empty owner", "s", func(c *trigger.Claim) { c.Owner = "" }),
			claim("a zero Now", "s", func(c *trigger.Claim) { c.Now = time.Time{} }),
			claim("Until equal to Now", "s", func(c *trigger.Claim) { c.Until = c.Now }),
			claim("Until before Now", "s", func(c *trigger.Claim) { c.Until = c.Now.Add(-time.Second) }),
		)
	})
	s.test(t, "Extend", func(h *harness) {
		r := h.fixture()
		extend := func(input, id string, now, until time.Time) call {
			return call{input, func() error { return h.s.Extend(h.ctx, id, r.Token, now, until) }}
		}
		now := at(10 * time.Second)
		h.rejects("Extend",
			extend("an empty ID", "", now, at(time.Hour)),
			extend("a zero now", "r", time.Time{}, at(time.Hour)),
			extend("until equal to now", "r", now, now),
			extend("until before now", "r", now, now.Add(-time.Second)),
		)
		h.is(h.s.Extend(h.ctx, "r", r.Token, now, at(time.Hour)), nil, "Extend after the refused calls")
	})
	s.test(t, "Finish", func(h *harness) {
		r := h.fixture()
		finish := func(input, id string, change func(*trigger.Outcome)) call {
			o := outcome(trigger.OutcomeRetry)
			change(&o)
			return call{input, func() error { return h.s.Finish(h.ctx, id, r.Token, o) }}
		}
		calls := []call{
			finish("an empty ID", "", func(*trigger.Outcome) {}),
			finish("kind 0", "r", func(o *trigger.Outcome) { o.Kind = 0 }),
			finish("kind 99", "r", func(o *trigger.Outcome) { o.Kind = 99 }),
			finish("a zero Now", "r", func(o *trigger.Outcome) { o.Now = time.Time{} }),
		}
		for _, k := range []trigger.OutcomeKind{trigger.OutcomeRetry, trigger.OutcomeReschedule, trigger.OutcomeSnooze} {
			calls = append(calls, finish("kind "+k.String()+" and a zero At", "r", func(o *trigger.Outcome) { o.Kind, o.At = k, time.Time{} }))
		}
		for _, b := range badTriggers() {
			calls = append(calls, finish("a follow-up with "+b.input, "r", func(o *trigger.Outcome) {
				o.FollowUps = []trigger.Trigger{plain("good", t0), b.tr}
			}))
		}
		h.rejects("Finish", calls...)
		h.finish("r", r.Token, outcome(trigger.OutcomeComplete))
	})
	s.test(t, "Cancel", func(h *harness) {
		h.fixture()
		h.rejects("Cancel",
			call{"an empty ID", func() error { return h.s.Cancel(h.ctx, "", at(time.Hour)) }},
			call{"a zero now", func() error { return h.s.Cancel(h.ctx, "s", time.Time{}) }},
		)
	})
	s.test(t, "Requeue", func(h *harness) {
		h.fixture()
		h.rejects("Requeue",
			call{"an empty ID", func() error { return h.s.Requeue(h.ctx, "", at(time.Hour), at(time.Hour)) }},
			call{"a zero now", func() error { return h.s.Requeue(h.ctx, "f", time.Time{}, at(time.Hour)) }},
			call{"a zero due time", func() error { return h.s.Requeue(h.ctx, "f", at(time.Hour), time.Time{}) }},
		)
	})
	s.test(t, "Delete", func(h *harness) {
		h.fixture()
		h.rejects("Delete", call{"an empty ID", func() error { return h.s.Delete(h.ctx, "") }})
	})
	s.test(t, "List", func(h *harness) {
		h.fixture()
		list := func(input string, q trigger.ListQuery) call {
			return call{input, func() error { _, err := h.s.List(h.ctx, q); return err }}
		}
		h.rejects("List",
			list("state 0", trigger.ListQuery{Limit: 10}),
			list("state 99", trigger.ListQuery{State: 99, Limit: 10}),
			list("limit 0", trigger.ListQuery{State: trigger.StateScheduled}),
			list("limit -1", trigger.ListQuery{State: trigger.StateScheduled, Limit: -1}),
			list("type 99", trigger.ListQuery{State: trigger.StateScheduled, Type: 99, Limit: 10}),
		)
	})
	s.test(t, "Register", func(h *harness) {
		h.fixture()
		var calls []call
		for _, b := range badTriggers() {
			for _, id := range []string{"new", "s"} { // unknown, and stored
				b := b
				if b.tr.ID == "bad" {
					b.tr.ID = id
				}
				calls = append(calls, call{"a trigger with " + b.input + " under ID " + id, func() error {
					_, err := h.s.Register(h.ctx, at(time.Hour), b.tr)
					return err
				}})
			}
		}
		calls = append(calls, call{"a zero now", func() error {
			_, err := h.s.Register(h.ctx, time.Time{}, plain("s", at(time.Hour)))
			return err
		}})
		h.rejects("Register", calls...)
	})
	s.test(t, "Pause", func(h *harness) {
		h.fixture()
		h.rejects("Pause",
			call{"an empty ID", func() error { return h.s.Pause(h.ctx, "", at(time.Hour)) }},
			call{"a zero now", func() error { return h.s.Pause(h.ctx, "s", time.Time{}) }},
		)
	})
	s.test(t, "Unpause", func(h *harness) {
		h.fixture()
		h.is(h.s.Pause(h.ctx, "s", at(time.Second)), nil, "Pause")
		h.rejects("Unpause",
			call{"an empty ID", func() error { return h.s.Unpause(h.ctx, "", at(time.Hour), time.Time{}, nil) }},
			call{"a zero now", func() error { return h.s.Unpause(h.ctx, "s", time.Time{}, time.Time{}, nil) }},
		)
	})
	s.test(t, "Purge", func(h *harness) {
		h.fixture()
		purge := func(input string, q trigger.PurgeQuery) call {
			return call{input, func() error { _, err := h.s.Purge(h.ctx, q); return err }}
		}
		h.rejects("Purge",
			purge("state scheduled", trigger.PurgeQuery{State: trigger.StateScheduled, Before: at(time.Hour), Limit: 10}),
			purge("state running", trigger.PurgeQuery{State: trigger.StateRunning, Before: at(time.Hour), Limit: 10}),
			purge("state 0", trigger.PurgeQuery{Before: at(time.Hour), Limit: 10}),
			purge("a zero Before", trigger.PurgeQuery{State: trigger.StateFailed, Limit: 10}),
			purge("limit 0", trigger.PurgeQuery{State: trigger.StateFailed, Before: at(time.Hour)}),
		)
	})
}
