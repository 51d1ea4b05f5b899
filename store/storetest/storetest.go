// Package storetest is the conformance suite for [trigger.Store]. Every store
// of this module runs it, and so can yours:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) trigger.Store {
//			s := mystore.Open(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite holds a store to the contract written in the doc comments of
// [trigger.Store], the query, claim and outcome types and the error
// sentinels. Each subtest gets its own fresh store and runs in parallel with
// the others, so newStore must be safe to call from parallel tests. The
// suite never sleeps: stores never read the clock, so the tests pass times
// (whole milliseconds of 2026, which every backend can hold exactly).
//
// Run the suite with -race: some subtests hit one store from many goroutines.
//
// Where the contract is silent, the suite pins down what a caller can
// observe:
//
//   - Save ignores the fields the store owns: State, UpdatedAt, Owner,
//     LeaseUntil, Token, Recovered, PlannedAt (it becomes DueAt) and Paused,
//     and the input-only Delay (read back as zero).
//   - Every write sets UpdatedAt to its time: Claim, Extend, Finish, Cancel,
//     Requeue.
//   - A trigger that stops running (Finish, Cancel) loses its Owner and
//     LeaseUntil and keeps its last Token. Recovered is checked only on the
//     result of Claim.
//   - A lease ends at its deadline: a claim at exactly LeaseUntil recovers
//     the trigger, as Due returns it once its lease ended at or before Now.
//   - Extend and Finish of an unknown ID fail with ErrLeaseLost (the
//     trigger may have been deleted); Get, Claim, Cancel, Requeue and Delete
//     of one fail with ErrNotFound.
//   - A zero time is bad input (ErrInvalid) to Save, SaveBatch, Extend,
//     Cancel, Requeue, Register, Pause and Unpause's now, and so is an
//     Extend deadline not after now, as the Validate methods have it for
//     the other operations.
//   - Only Pause and Unpause change Paused: a paused trigger that runs,
//     fails, is canceled, requeued or registered again is still paused.
//   - Register compares payloads as the store keeps them: the same map,
//     serialised again, is the same payload.
//
// A store that implements [trigger.WaitStore] is also held to its contract
// (the Waits group) and to how waits meet the rest of it (the
// WaitsAndRecurring group: a run's outcome keeps its Checkpoint, a wait
// keeps PlannedAt and Paused, Register leaves a wait alone); both groups
// are skipped for a store that does not.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// Run runs the conformance suite against the stores newStore returns. Each
// call of newStore must return a new, empty store; closing it is up to
// newStore (with t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) trigger.Store) {
	s := suite{newStore}
	for _, g := range []struct {
		name string
		run  func(suite, *testing.T)
	}{
		{"Save", suite.save},
		{"SaveBatch", suite.saveBatch},
		{"Get", suite.get},
		{"Payload", suite.payload},
		{"Due", suite.due},
		{"Claim", suite.claim},
		{"Extend", suite.extend},
		{"Finish", suite.finish},
		{"FinishBatch", suite.finishBatch},
		{"Cancel", suite.cancel},
		{"Requeue", suite.requeue},
		{"Delete", suite.delete},
		{"List", suite.list},
		{"Purge", suite.purge},
		{"PlannedAt", suite.plannedAt},
		{"Register", suite.register},
		{"Pause", suite.pause},
		{"Unpause", suite.unpause},
		{"InvalidInput", suite.invalidInput},
		{"Waits", suite.waits},
		{"WaitsAndRecurring", suite.waitsAndRecurring},
	} {
		t.Run(g.name, func(t *testing.T) { g.run(s, t) })
	}
}

type suite struct {
	newStore func(t *testing.T) trigger.Store
}

// test runs f as a parallel subtest with a fresh store.
func (s suite) test(t *testing.T, name string, f func(h *harness)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		f(&harness{T: t, ctx: t.Context(), s: s.newStore(t)})
	})
}

// Times used by the suite: every trigger is saved at t0, and everything else
// happens at whole milliseconds after it.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// leaseFor is the lease length of the suite's claims.
const leaseFor = time.Minute

// plain returns a NEXT trigger due at due.
func plain(id string, due time.Time) trigger.Trigger {
	return trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: due}
}

// waiting returns a MANUAL trigger without a due time.
func waiting(id string) trigger.Trigger {
	return trigger.Trigger{ID: id, Type: trigger.TypeManual}
}

// stored returns tr as a Save at now stores it.
func stored(tr trigger.Trigger, now time.Time) trigger.Trigger {
	tr.State = tr.InitialState()
	if tr.CreatedAt.IsZero() {
		tr.CreatedAt = now
	}
	tr.UpdatedAt = now
	tr.Owner, tr.LeaseUntil, tr.Token, tr.Recovered = "", time.Time{}, 0, false
	tr.PlannedAt, tr.Paused, tr.Delay = tr.DueAt, false, 0
	return tr
}

// lease returns a claim by owner at now for leaseFor.
func lease(owner string, now time.Time) trigger.Claim {
	return trigger.Claim{Owner: owner, Now: now, Until: now.Add(leaseFor)}
}

// harness wraps a store with helpers that fail the test on any unexpected
// error.
type harness struct {
	*testing.T
	ctx context.Context
	s   trigger.Store
}

// save saves ts one by one at t0.
func (h *harness) save(ts ...trigger.Trigger) {
	h.Helper()
	for _, tr := range ts {
		if err := h.s.Save(h.ctx, t0, tr); err != nil {
			h.Fatalf("Save(%q): %v", tr.ID, err)
		}
	}
}

func (h *harness) get(id string) trigger.Trigger {
	h.Helper()
	tr, err := h.s.Get(h.ctx, id)
	if err != nil {
		h.Fatalf("Get(%q): %v", id, err)
	}
	return tr
}

// absent checks that no trigger has the given id.
func (h *harness) absent(id string) {
	h.Helper()
	if tr, err := h.s.Get(h.ctx, id); !errors.Is(err, trigger.ErrNotFound) {
		h.Fatalf("Get(%q) = %+v, %v; want ErrNotFound", id, tr, err)
	}
}

func (h *harness) claim(id string, c trigger.Claim) trigger.Trigger {
	h.Helper()
	tr, err := h.s.Claim(h.ctx, id, c)
	if err != nil {
		h.Fatalf("Claim(%q, %+v): %v", id, c, err)
	}
	return tr
}

func (h *harness) finish(id string, token uint64, o trigger.Outcome) {
	h.Helper()
	if err := h.s.Finish(h.ctx, id, token, o); err != nil {
		h.Fatalf("Finish(%q, %d, %s): %v", id, token, o.Kind, err)
	}
}

func (h *harness) cancel(id string, now time.Time) {
	h.Helper()
	if err := h.s.Cancel(h.ctx, id, now); err != nil {
		h.Fatalf("Cancel(%q): %v", id, err)
	}
}

func (h *harness) due(q trigger.DueQuery) []trigger.Ref {
	h.Helper()
	refs, err := h.s.Due(h.ctx, q)
	if err != nil {
		h.Fatalf("Due(%+v): %v", q, err)
	}
	return refs
}

// dueIDs returns the IDs of every trigger due by until at now, in order.
func (h *harness) dueIDs(now, until time.Time) []string {
	h.Helper()
	var ids []string
	for _, r := range h.due(trigger.DueQuery{Now: now, Until: until, Limit: maxTriggers}) {
		ids = append(ids, r.ID)
	}
	return ids
}

func (h *harness) list(q trigger.ListQuery) []trigger.Trigger {
	h.Helper()
	ts, err := h.s.List(h.ctx, q)
	if err != nil {
		h.Fatalf("List(%+v): %v", q, err)
	}
	return ts
}

// inState saves a trigger with the given id and takes it to state s through
// the store's own operations: claimed by "owner" at t0 for running, finished
// at 1s for retrying (due at 1h), completed and failed, canceled at 1s.
func (h *harness) inState(id string, s trigger.State) trigger.Trigger {
	h.Helper()
	if s == trigger.StateWaiting {
		h.save(waiting(id))
		return h.get(id)
	}
	h.save(plain(id, t0))
	kind := map[trigger.State]trigger.OutcomeKind{
		trigger.StateRetrying:  trigger.OutcomeRetry,
		trigger.StateCompleted: trigger.OutcomeComplete,
		trigger.StateFailed:    trigger.OutcomeFail,
	}[s]
	switch {
	case s == trigger.StateCanceled:
		h.cancel(id, at(time.Second))
	case s == trigger.StateRunning || kind != 0:
		c := h.claim(id, lease("owner", t0))
		if kind != 0 {
			h.finish(id, c.Token, trigger.Outcome{Kind: kind, Now: at(time.Second), At: at(time.Hour), Error: "boom"})
		}
	}
	tr := h.get(id)
	if tr.State != s {
		h.Fatalf("inState(%q, %s): the trigger is %s", id, s, tr.State)
	}
	return tr
}

// expect checks that the stored trigger is want.
func (h *harness) expect(want trigger.Trigger) {
	h.Helper()
	if d := diff(want, h.get(want.ID)); d != "" {
		h.Errorf("trigger %q differs from the expected one:%s", want.ID, d)
	}
}

// is checks that err matches want (nil for success); what names the call.
func (h *harness) is(err, want error, what string) {
	h.Helper()
	switch {
	case want == nil && err != nil:
		h.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		h.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// changesNothing checks that op returns want (nil for success) and leaves
// every stored trigger as it was.
func (h *harness) changesNothing(want error, what string, op func() error) {
	h.Helper()
	before := h.snapshot()
	h.is(op(), want, what)
	h.unchanged(before, what)
}

// snapshot returns every stored trigger, read with List.
func (h *harness) snapshot() map[string]trigger.Trigger {
	h.Helper()
	all := map[string]trigger.Trigger{}
	for _, s := range trigger.States() {
		for _, tr := range h.listAll(s, 100) {
			all[tr.ID] = tr
		}
	}
	return all
}

// listAll pages through every trigger in state s, page at a time.
func (h *harness) listAll(s trigger.State, page int) []trigger.Trigger {
	h.Helper()
	q := trigger.ListQuery{State: s, Limit: page}
	var all []trigger.Trigger
	for {
		ts := h.list(q)
		all = append(all, ts...)
		if len(ts) < page {
			return all
		}
		if len(all) > maxTriggers {
			h.Fatalf("List(%s) by pages of %d: more than %d triggers; does After advance?", s, page, maxTriggers)
		}
		q.After = ts[len(ts)-1].ID
	}
}

// maxTriggers is more triggers than any test of the suite stores: paging
// past it means the store's cursor does not advance.
const maxTriggers = 1000

// unchanged checks that the store holds exactly the triggers of before.
func (h *harness) unchanged(before map[string]trigger.Trigger, what string) {
	h.Helper()
	after := h.snapshot()
	for id, b := range before {
		a, ok := after[id]
		switch d := diff(b, a); {
		case !ok:
			h.Errorf("%s: trigger %q disappeared", what, id)
		case d != "":
			h.Errorf("%s: trigger %q changed:%s", what, id, d)
		}
	}
	for id := range after {
		if _, ok := before[id]; !ok {
			h.Errorf("%s: trigger %q appeared", what, id)
		}
	}
}

// diff describes how got differs from want field by field, or returns "".
// Times are compared with Equal, a nil map equals an empty one, and
// Recovered is ignored: it is only promised on the result of a claim.
func diff(want, got trigger.Trigger) string {
	var b strings.Builder
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	for i := range wv.NumField() {
		name := wv.Type().Field(i).Name
		w, g := wv.Field(i).Interface(), gv.Field(i).Interface()
		if name != "Recovered" && !same(w, g) {
			fmt.Fprintf(&b, "\n\t%s: got %v, want %v", name, g, w)
		}
	}
	return b.String()
}

func same(a, b any) bool {
	switch a := a.(type) {
	case time.Time:
		return a.Equal(b.(time.Time))
	case trigger.Payload:
		if b := b.(trigger.Payload); len(a) == 0 || len(b) == 0 {
			return len(a) == len(b)
		}
	case map[string]string:
		if b := b.(map[string]string); len(a) == 0 || len(b) == 0 {
			return len(a) == len(b)
		}
	}
	return reflect.DeepEqual(a, b)
}

// together runs f(0) ... f(n-1) on n goroutines released at once and
// returns their errors.
func together(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWins checks that exactly one of errs is nil and all others match lose.
func (h *harness) oneWins(errs []error, lose error, what string) (winner int) {
	h.Helper()
	winner = -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			h.Fatalf("%s: goroutines %d and %d both succeeded", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lose):
			h.Fatalf("%s: goroutine %d: got error %v, want %v", what, i, err, lose)
		}
	}
	if winner < 0 {
		h.Fatalf("%s: no goroutine succeeded", what)
	}
	return winner
}
