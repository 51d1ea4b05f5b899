package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// ref returns the Ref of a trigger with the given id, due time and priority.
func ref(id string, due time.Time, priority int) trigger.Ref {
	return trigger.Ref{ID: id, DueAt: due, Priority: priority}
}

// before reports whether a comes before b in the due order.
func before(a, b trigger.Ref) bool {
	if !a.DueAt.Equal(b.DueAt) {
		return a.DueAt.Before(b.DueAt)
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.ID < b.ID
}

// expectDue checks that Due(q) returns exactly want.
func (h *harness) expectDue(q trigger.DueQuery, want ...trigger.Ref) {
	h.Helper()
	got := h.due(q)
	if !slices.EqualFunc(got, want, func(a, b trigger.Ref) bool {
		return a.ID == b.ID && a.DueAt.Equal(b.DueAt) && a.Priority == b.Priority
	}) {
		h.Errorf("Due(Now %v, Until %v, After %+v, Limit %d):\n\tgot  %s\n\twant %s",
			q.Now, q.Until, q.After, q.Limit, refsString(got), refsString(want))
	}
}

func refsString(refs []trigger.Ref) string {
	s := "["
	for i, r := range refs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s@%s/%d", r.ID, r.DueAt.Sub(t0), r.Priority)
	}
	return s + "]"
}

// saveDue saves a NEXT trigger for every ref.
func (h *harness) saveDue(refs ...trigger.Ref) {
	h.Helper()
	for _, r := range refs {
		tr := plain(r.ID, r.DueAt)
		tr.Priority = r.Priority
		h.save(tr)
	}
}

func (s suite) due(t *testing.T) {
	s.test(t, "Empty", func(h *harness) {
		h.expectDue(trigger.DueQuery{Now: t0, Until: at(time.Hour), Limit: 10})
	})
	// The order: due time, then priority (higher first), then ID.
	order := []trigger.Ref{
		ref("early", t0, -100),
		ref("c", at(time.Second), 0),
		ref("z", at(2*time.Second), 5),
		ref("a", at(2*time.Second), 0),
		ref("b", at(2*time.Second), 0),
		ref("m", at(2*time.Second), -3),
	}
	s.test(t, "Order", func(h *harness) {
		h.saveDue(order[4], order[2], order[0], order[5], order[1], order[3])
		h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), Limit: 10}, order...)
	})
	s.test(t, "UntilIsInclusive", func(h *harness) {
		h.saveDue(ref("on", at(10*time.Second), 0), ref("past", at(10*time.Second+time.Millisecond), 0))
		h.expectDue(trigger.DueQuery{Now: at(10 * time.Second), Until: at(10 * time.Second), Limit: 10},
			ref("on", at(10*time.Second), 0))
	})
	s.test(t, "UntilLooksAheadOfNow", func(h *harness) {
		h.saveDue(ref("soon", at(10*time.Second), 0), ref("later", at(time.Hour), 0))
		h.expectDue(trigger.DueQuery{Now: t0, Until: at(time.Minute), Limit: 10},
			ref("soon", at(10*time.Second), 0))
	})
	s.test(t, "Limit", func(h *harness) {
		h.saveDue(order...)
		h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), Limit: 3}, order[:3]...)
	})
	s.test(t, "AfterResumesAtTheCursor", func(h *harness) {
		h.saveDue(order...)
		for i, after := range order {
			h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), After: after, Limit: 10}, order[i+1:]...)
		}
	})
	s.test(t, "AfterWithoutIDSkipsItsWholeDueTime", func(h *harness) {
		h.saveDue(order...)
		h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), After: trigger.Ref{DueAt: at(time.Second)}, Limit: 10},
			order[2:]...)
		h.expectDue(trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), After: trigger.Ref{DueAt: at(1500 * time.Millisecond)}, Limit: 10},
			order[2:]...)
	})
	s.test(t, "PagingVisitsEachTriggerOnce", func(h *harness) {
		var refs []trigger.Ref
		for i := range 40 {
			refs = append(refs, ref(fmt.Sprintf("t%02d", (i*17)%40), at(time.Duration(i%5)*time.Second), i%3-1))
		}
		h.saveDue(refs...)
		slices.SortFunc(refs, func(a, b trigger.Ref) int {
			if before(a, b) {
				return -1
			}
			return 1
		})
		for _, limit := range []int{1, 3, 7, 40} {
			q := trigger.DueQuery{Now: at(time.Hour), Until: at(time.Hour), Limit: limit}
			var got []trigger.Ref
			for page := h.due(q); len(page) > 0; page = h.due(q) {
				if len(page) > limit {
					h.Fatalf("Due with limit %d returned %d refs", limit, len(page))
				}
				got = append(got, page...)
				if len(got) > len(refs) {
					h.Fatalf("paging with limit %d returned more than the %d due triggers; does After advance?", limit, len(refs))
				}
				q.After = page[len(page)-1]
			}
			if !slices.EqualFunc(got, refs, func(a, b trigger.Ref) bool { return a.ID == b.ID }) {
				h.Errorf("paging with limit %d:\n\tgot  %s\n\twant %s", limit, refsString(got), refsString(refs))
			}
		}
	})
	s.test(t, "OnlyClaimableTriggers", func(h *harness) {
		for _, st := range trigger.States() {
			h.inState(st.String(), st) // running: leased until 1m; retrying: due at 1h
		}
		// The running trigger's lease ends before Until but after Now: it is
		// still held, so not due.
		h.expectDue(trigger.DueQuery{Now: at(30 * time.Second), Until: at(2 * time.Hour), Limit: 10},
			ref("scheduled", t0, 0), ref("retrying", at(time.Hour), 0))
	})
	s.test(t, "ExpiredLeaseIsDueAtItsDeadline", func(h *harness) {
		h.saveDue(ref("a", at(59*time.Second), 0), ref("z", at(time.Minute), 0))
		h.save(plain("r", t0))
		h.claim("r", lease("owner", t0)) // until 1m
		q := trigger.DueQuery{Now: at(time.Minute - time.Millisecond), Until: at(time.Minute), Limit: 10}
		h.expectDue(q, ref("a", at(59*time.Second), 0), ref("z", at(time.Minute), 0))
		q.Now = at(time.Minute)
		h.expectDue(q, ref("a", at(59*time.Second), 0), ref("r", at(time.Minute), 0), ref("z", at(time.Minute), 0))
	})
}
