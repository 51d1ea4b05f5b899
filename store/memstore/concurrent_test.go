package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// TestConcurrentOps hammers one store from many goroutines that save,
// claim, finish (with and without follow-ups), park on children, cancel,
// register, and read Due, on triggers they share: calls on one shard, on several (a
// Finish whose follow-ups or parent lie in other shards), and on all of them
// (Due, Park) meet. Run with -race. Every call must succeed or fail with the
// sentinel its state explains; every Due page must be in due order; and at
// the end the store's structures must agree, every trigger must be in
// exactly one state, Due must return exactly the claimable triggers, and
// every parent waiting for children must count exactly its children that
// have not ended.
func TestConcurrentOps(t *testing.T) {
	if testing.Short() {
		t.Skip("hammers the store")
	}
	t.Parallel()
	ctx := context.Background()
	s := memstore.New()
	ms := func(n int64) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var clock atomic.Int64
	const workers, steps = 8, 4000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			if err := hammer(ctx, s, w, steps, &clock, ms); err != nil {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	if err := memstore.Check(s); err != nil {
		t.Fatal(err)
	}
	states := map[string]trigger.State{}
	var all []trigger.Trigger
	for _, st := range trigger.States() {
		for _, tr := range listEvery(t, s, st) {
			if prev, dup := states[tr.ID]; dup {
				t.Fatalf("%s is listed as %s and as %s", tr.ID, prev, st)
			}
			if tr.State != st {
				t.Fatalf("List(%s) returned %s, which is %s", st, tr.ID, tr.State)
			}
			states[tr.ID] = st
			all = append(all, tr)
		}
	}
	if len(all) == 0 {
		t.Fatal("the store is empty")
	}
	count := map[trigger.State]int{}
	parents := 0
	for _, tr := range all {
		count[tr.State]++
		if tr.Wait.Kind == trigger.WaitKindChildren && tr.State == trigger.StateWaiting {
			parents++
		}
	}
	t.Logf("%d triggers: %v; %d parents waiting", len(all), count, parents)
	for _, tr := range all {
		got, err := s.Get(ctx, tr.ID)
		if err != nil || got.State != tr.State {
			t.Fatalf("Get(%s) = %s, %v; List says %s", tr.ID, got.State, err, tr.State)
		}
		if tr.State != trigger.StateWaiting || tr.Wait.Kind != trigger.WaitKindChildren {
			continue
		}
		children, err := s.Children(ctx, tr.ID)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, c := range children {
			if !c.State.Final() {
				pending++
			}
		}
		if pending == 0 || tr.Wait.Pending != pending {
			t.Fatalf("parent %s waits for %d children; %d of its %d have not ended", tr.ID, tr.Wait.Pending, pending, len(children))
		}
	}

	// Due returns the claimable triggers, and only them, in order.
	end := clock.Load()
	for _, now := range []int64{end / 2, end, end + 100} {
		var want []trigger.Ref
		for _, tr := range all {
			switch {
			case (tr.State == trigger.StateScheduled || tr.State == trigger.StateRetrying) && !tr.Paused && !tr.DueAt.After(ms(now)):
				want = append(want, trigger.Ref{ID: tr.ID, DueAt: tr.DueAt, Priority: tr.Priority})
			case tr.State == trigger.StateRunning && !tr.LeaseUntil.After(ms(now)):
				want = append(want, trigger.Ref{ID: tr.ID, DueAt: tr.LeaseUntil, Priority: tr.Priority})
			}
		}
		slices.SortFunc(want, compareRefs)
		got, err := s.Due(ctx, trigger.DueQuery{Now: ms(now), Until: ms(now), Limit: len(all) + 1})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, func(a, b trigger.Ref) bool { return compareRefs(a, b) == 0 }) {
			t.Fatalf("Due at %d:\n\tgot  %v\n\twant %v", now, got, want)
		}
		for _, r := range got {
			if _, err := s.Claim(ctx, r.ID, trigger.Claim{Owner: "check", Now: ms(now), Until: ms(now + 1)}); err != nil {
				t.Fatalf("Due at %d returned %s, which cannot be claimed: %v", now, r.ID, err)
			}
		}
		// The claims moved the triggers on: read them again.
		all = all[:0]
		for _, st := range trigger.States() {
			all = append(all, listEvery(t, s, st)...)
		}
	}
	if err := memstore.Check(s); err != nil {
		t.Fatal(err)
	}
}

// hammer runs steps random calls on s as worker w.
func hammer(ctx context.Context, s *memstore.Store, w, steps int, clock *atomic.Int64, ms func(int64) time.Time) error {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	var children []string // the children this worker made
	seq := 0
	// Registered triggers ("r...") are neither parents nor children:
	// registering an ended trigger again revives it, and a revived parent
	// or child makes the count of a parent's wait differ from its children
	// that have not ended (see the end of TestConcurrentOps).
	registered := func() string { return fmt.Sprintf("r%03d", rng.IntN(50)) }
	pick := func() string {
		switch n := rng.IntN(12); {
		case n >= 10:
			return registered()
		case n < 4:
			return fmt.Sprintf("t%03d", rng.IntN(100))
		case n < 8 || len(children) == 0:
			return fmt.Sprintf("f%03d", rng.IntN(400))
		default:
			return children[rng.IntN(len(children))]
		}
	}
	newTrigger := func(id string, now int64) trigger.Trigger {
		tr := trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: ms(now + int64(rng.IntN(20)) - 5), Priority: rng.IntN(3) - 1}
		if rng.IntN(4) == 0 {
			tr.Payload = trigger.Payload{"n": rng.IntN(100)}
		}
		return tr
	}
	// Every call is well-formed: it fails only as the state of the store
	// has it.
	expected := func(op string, err error) error {
		for _, ok := range []error{trigger.ErrNotFound, trigger.ErrDuplicate, trigger.ErrClaimed, trigger.ErrNotDue, trigger.ErrInvalidState, trigger.ErrLeaseLost} {
			if err == nil || errors.Is(err, ok) {
				return nil
			}
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	kinds := []trigger.OutcomeKind{trigger.OutcomeComplete, trigger.OutcomeRetry, trigger.OutcomeFail, trigger.OutcomeReschedule, trigger.OutcomeSnooze}
	for range steps {
		now := clock.Add(int64(rng.IntN(2)))
		var err error
		switch op := rng.IntN(100); {
		case op < 20:
			err = expected("Save", s.Save(ctx, ms(now), newTrigger(pick(), now)))
		case op < 25:
			err = expected("SaveBatch", s.SaveBatch(ctx, ms(now), []trigger.Trigger{newTrigger(pick(), now), newTrigger(pick(), now)}))
		case op < 70:
			id := pick()
			tr, cerr := s.Claim(ctx, id, trigger.Claim{Owner: fmt.Sprint(w), Now: ms(now), Until: ms(now + 1 + int64(rng.IntN(10)))})
			if err = expected("Claim", cerr); err != nil || cerr != nil {
				break
			}
			switch n := rng.IntN(10); {
			case n < 6:
				o := trigger.Outcome{Kind: kinds[rng.IntN(len(kinds))], Now: ms(now), At: ms(now + int64(rng.IntN(10)))}
				for range rng.IntN(3) {
					o.FollowUps = append(o.FollowUps, newTrigger(pick(), now))
				}
				err = expected("Finish", s.Finish(ctx, id, tr.Token, o))
			case n < 7 && id[0] != 'r':
				p := trigger.Park{Kind: trigger.WaitKindChildren, Now: ms(now)}
				for range 1 + rng.IntN(3) {
					seq++
					c := fmt.Sprintf("c%d-%d", w, seq)
					p.Children = append(p.Children, newTrigger(c, now))
					children = append(children, c)
				}
				_, perr := s.Park(ctx, id, tr.Token, p)
				err = expected("Park", perr)
			}
			// Otherwise the lease runs out, and a claim takes it over.
		case op < 90:
			if tr, gerr := s.Get(ctx, pick()); gerr == nil {
				o := trigger.Outcome{Kind: kinds[rng.IntN(len(kinds))], Now: ms(now), At: ms(now + int64(rng.IntN(10)))}
				if rng.IntN(2) == 0 {
					o.FollowUps = []trigger.Trigger{newTrigger(pick(), now)}
				}
				err = expected("Finish", s.Finish(ctx, tr.ID, tr.Token, o))
			}
		case op < 95:
			err = expected("Cancel", s.Cancel(ctx, pick(), ms(now)))
		case op < 97:
			_, rerr := s.Register(ctx, ms(now), newTrigger(registered(), now))
			err = expected("Register", rerr)
		default:
			err = checkPage(ctx, s, ms(now+int64(rng.IntN(10))-3), ms(now+int64(rng.IntN(10))-3), 1+rng.IntN(20))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkPage reads a page of Due and checks that it is in due order and
// within its bounds.
func checkPage(ctx context.Context, s *memstore.Store, now, until time.Time, limit int) error {
	refs, err := s.Due(ctx, trigger.DueQuery{Now: now, Until: until, Limit: limit})
	switch {
	case err != nil:
		return err
	case len(refs) > limit:
		return fmt.Errorf("Due with limit %d returned %d refs", limit, len(refs))
	}
	for i, r := range refs {
		if r.DueAt.After(until) && r.DueAt.After(now) {
			return fmt.Errorf("Due(Now %v, Until %v) returned %v", now, until, r)
		}
		if i > 0 && compareRefs(refs[i-1], r) >= 0 {
			return fmt.Errorf("Due returned %v before %v", refs[i-1], r)
		}
	}
	return nil
}

// listEvery returns every trigger in state st, page by page.
func listEvery(t *testing.T, s *memstore.Store, st trigger.State) []trigger.Trigger {
	t.Helper()
	var all []trigger.Trigger
	q := trigger.ListQuery{State: st, Limit: 100}
	for {
		page, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < q.Limit {
			return all
		}
		q.After = page[len(page)-1].ID
	}
}
