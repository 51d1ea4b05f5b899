package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// finishBatch checks trigger.BatchFinisher, for stores that implement it:
// each outcome of a batch is recorded as Finish records it, and an outcome
// that Finish would refuse is refused alone, changing nothing, while the
// others of its batch are recorded.
func (s suite) finishBatch(t *testing.T) {
	test := func(name string, f func(h *harness, bf trigger.BatchFinisher)) {
		s.test(t, name, func(h *harness) {
			bf, ok := h.s.(trigger.BatchFinisher)
			if !ok {
				h.Skipf("%T does not implement trigger.BatchFinisher", h.s)
			}
			f(h, bf)
		})
	}

	test("EachKindAsFinish", func(h *harness, bf trigger.BatchFinisher) {
		var fs []trigger.Finishing
		want := map[string]trigger.Trigger{}
		for i, k := range outcomeKinds {
			id := string(rune('a' + i))
			h.save(plain(id, t0))
			c := h.claim(id, lease("w1", t0))
			o := outcome(k)
			fs = append(fs, trigger.Finishing{ID: id, Token: c.Token, Outcome: o})
			want[id] = finished(c, o)
		}
		for i, err := range bf.FinishBatch(h.ctx, fs) {
			h.is(err, nil, "FinishBatch of "+fs[i].Outcome.Kind.String())
		}
		for _, w := range want {
			h.expect(w)
		}
	})

	test("OneRefusedOthersRecorded", func(h *harness, bf trigger.BatchFinisher) {
		h.save(plain("a", t0), plain("b", t0), plain("c", t0), plain("taken", t0))
		a := h.claim("a", lease("w1", t0))
		b := h.claim("b", lease("w1", t0))
		c := h.claim("c", lease("w1", t0))
		done := trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(time.Second)}
		dup := done
		dup.FollowUps = []trigger.Trigger{plain("taken", at(time.Hour))}
		before := h.snapshot()
		errs := bf.FinishBatch(h.ctx, []trigger.Finishing{
			{ID: "a", Token: a.Token, Outcome: done},
			{ID: "b", Token: b.Token + 1, Outcome: done}, // stale token
			{ID: "c", Token: c.Token, Outcome: dup},      // follow-up ID taken
			{ID: "missing", Token: 1, Outcome: done},
			{ID: "a", Token: a.Token, Outcome: trigger.Outcome{}}, // invalid
		})
		if len(errs) != 5 {
			h.Fatalf("FinishBatch returned %d errors for 5 outcomes", len(errs))
		}
		h.is(errs[0], nil, "FinishBatch of a")
		h.is(errs[1], trigger.ErrLeaseLost, "FinishBatch of b with a stale token")
		h.is(errs[2], trigger.ErrDuplicate, "FinishBatch of c with a taken follow-up ID")
		if !errors.Is(errs[3], trigger.ErrNotFound) && !errors.Is(errs[3], trigger.ErrLeaseLost) {
			h.Errorf("FinishBatch of a missing trigger: got error %v, want ErrNotFound or ErrLeaseLost", errs[3])
		}
		h.is(errs[4], trigger.ErrInvalid, "FinishBatch of an invalid outcome")
		h.expect(finished(a, done))
		delete(before, "a")
		after := h.snapshot()
		delete(after, "a")
		for id, tr := range before {
			if d := diff(tr, after[id]); d != "" {
				h.Errorf("trigger %q changed by a refused outcome:%s", id, d)
			}
		}
	})

	test("Empty", func(h *harness, bf trigger.BatchFinisher) {
		if errs := bf.FinishBatch(h.ctx, nil); len(errs) != 0 {
			h.Errorf("FinishBatch(nil) = %v, want no errors", errs)
		}
	})
}
