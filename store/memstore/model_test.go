package memstore_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// TestRandomOps runs random operations on a small store, with many ties in
// due times and lease deadlines, and checks Due and Purge against what List
// says the store holds: Due must merge the running triggers, which are kept
// out of the due index, into the order of the others; Purge must delete
// exactly min(Limit, matching) triggers however its earlier calls left the
// list of a state. Deletes and purges free slots, and their payloads, that
// later saves reuse; the store's structures must agree throughout.
func TestRandomOps(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	s := memstore.New()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	clock := 0
	id := func() string { return fmt.Sprintf("t%03d", rng.IntN(300)) }
	// Every call is well-formed; the others may fail as the state has it.
	valid := func(err error) {
		if errors.Is(err, trigger.ErrInvalid) {
			t.Fatal(err)
		}
	}
	kinds := []trigger.OutcomeKind{trigger.OutcomeComplete, trigger.OutcomeRetry, trigger.OutcomeFail, trigger.OutcomeReschedule, trigger.OutcomeSnooze}
	// A payload, or none, or an empty one, which a Reschedule stores as none.
	payload := func() trigger.Payload {
		switch rng.IntN(3) {
		case 0:
			return trigger.Payload{"n": rng.IntN(100)}
		case 1:
			return trigger.Payload{}
		}
		return nil
	}
	for step := range 20000 {
		clock += rng.IntN(3)
		now := ms(clock)
		switch op := rng.IntN(100); {
		case op < 30:
			tr := trigger.Trigger{ID: id(), Type: trigger.TypeNext, DueAt: ms(clock + rng.IntN(20) - 5), Priority: rng.IntN(3) - 1}
			if rng.IntN(10) == 0 {
				tr.Type, tr.DueAt = trigger.TypeManual, time.Time{}
			}
			tr.Payload = payload()
			valid(s.Save(ctx, now, tr))
		case op < 55:
			_, err := s.Claim(ctx, id(), trigger.Claim{Owner: "w", Now: now, Until: ms(clock + 1 + rng.IntN(10)), Force: rng.IntN(10) == 0})
			valid(err)
		case op < 75:
			if tr, err := s.Get(ctx, id()); err == nil {
				token := tr.Token - uint64(rng.IntN(2))
				valid(s.Finish(ctx, tr.ID, token, trigger.Outcome{Kind: kinds[rng.IntN(len(kinds))], Now: now, At: ms(clock + rng.IntN(10)), Payload: payload()}))
			}
		case op < 80:
			if tr, err := s.Get(ctx, id()); err == nil {
				valid(s.Extend(ctx, tr.ID, tr.Token, now, ms(clock+1+rng.IntN(10))))
			}
		case op < 85:
			valid(s.Cancel(ctx, id(), now))
		case op < 90:
			valid(s.Requeue(ctx, id(), now, ms(clock+rng.IntN(10))))
		case op < 93:
			valid(s.Delete(ctx, id()))
		default:
			st := []trigger.State{trigger.StateCompleted, trigger.StateFailed, trigger.StateCanceled}[rng.IntN(3)]
			q := trigger.PurgeQuery{State: st, Before: ms(clock - rng.IntN(30)), Limit: 1 + rng.IntN(8)}
			matching := 0
			for _, tr := range listEvery(t, s, st) {
				if tr.UpdatedAt.Before(q.Before) {
					matching++
				}
			}
			n, err := s.Purge(ctx, q)
			if err != nil || n != min(q.Limit, matching) {
				t.Fatalf("step %d: Purge(%+v) = %d, %v; %d matched", step, q, n, err, matching)
			}
		}
		if step%10 == 0 {
			checkDue(t, s, rng, clock, ms)
			if err := memstore.Check(s); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
}

// TestRegisterTies changes the priority of triggers due at one time, many
// enough to fill several leaves of the due index, by registering them again,
// then deletes them all: the index must find every entry where its new
// priority puts it, whatever separators the old priorities left in the
// index, and be empty at the end.
func TestRegisterTies(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	const n = 1000
	tr := func(i, priority int) trigger.Trigger {
		return trigger.Trigger{ID: fmt.Sprintf("t%04d", i), Type: trigger.TypeNext, DueAt: t0, Priority: priority}
	}
	for i := range n {
		if err := s.Save(ctx, t0, tr(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := s.Register(ctx, t0, tr(i, 1+i%7)); err != nil {
			t.Fatal(err)
		}
	}
	if err := memstore.Check(s); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.Delete(ctx, tr(i, 0).ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := memstore.Check(s); err != nil {
		t.Fatal(err)
	}
	refs, err := s.Due(ctx, trigger.DueQuery{Now: t0, Until: t0, Limit: n})
	if err != nil || len(refs) != 0 {
		t.Fatalf("Due after deleting everything = %d refs, %v", len(refs), err)
	}
}

// checkDue checks a random Due query, and paging through it, against the
// due order worked out from List.
func checkDue(t *testing.T, s *memstore.Store, rng *rand.Rand, clock int, ms func(int) time.Time) {
	t.Helper()
	now, until := ms(clock+rng.IntN(10)-3), ms(clock+rng.IntN(10)-3)
	var all []trigger.Ref
	for _, st := range []trigger.State{trigger.StateScheduled, trigger.StateRetrying} {
		for _, tr := range listEvery(t, s, st) {
			if !tr.DueAt.After(until) {
				all = append(all, trigger.Ref{ID: tr.ID, DueAt: tr.DueAt, Priority: tr.Priority})
			}
		}
	}
	for _, tr := range listEvery(t, s, trigger.StateRunning) {
		if !tr.LeaseUntil.After(now) {
			all = append(all, trigger.Ref{ID: tr.ID, DueAt: tr.LeaseUntil, Priority: tr.Priority})
		}
	}
	slices.SortFunc(all, compareRefs)

	q := trigger.DueQuery{Now: now, Until: until, Limit: 1 + rng.IntN(6)}
	want := all
	switch rng.IntN(4) {
	case 1: // after a time
		q.After = trigger.Ref{DueAt: ms(clock + rng.IntN(10) - 5)}
		want = slices.DeleteFunc(slices.Clone(all), func(r trigger.Ref) bool { return !r.DueAt.After(q.After.DueAt) })
	case 2: // after a ref, due or not
		q.After = trigger.Ref{ID: fmt.Sprintf("t%03d", rng.IntN(300)), DueAt: ms(clock + rng.IntN(10) - 5), Priority: rng.IntN(3) - 1}
		if len(all) > 0 && rng.IntN(2) == 0 {
			q.After = all[rng.IntN(len(all))]
		}
		want = slices.DeleteFunc(slices.Clone(all), func(r trigger.Ref) bool { return compareRefs(r, q.After) <= 0 })
	}
	var got []trigger.Ref
	for {
		page, err := s.Due(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > q.Limit {
			t.Fatalf("Due(%+v) returned %d refs", q, len(page))
		}
		got = append(got, page...)
		if len(page) < q.Limit || len(got) > len(want) {
			break
		}
		q.After = page[len(page)-1]
	}
	if !slices.EqualFunc(got, want, func(a, b trigger.Ref) bool { return compareRefs(a, b) == 0 }) {
		t.Fatalf("Due(Now %v, Until %v) by pages of %d:\n\tgot  %v\n\twant %v", now, until, q.Limit, got, want)
	}
}

func compareRefs(a, b trigger.Ref) int {
	return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(b.Priority, a.Priority), strings.Compare(a.ID, b.ID))
}
