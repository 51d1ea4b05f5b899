package boltstore

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// TestFreshClaimReadsLikeTheFile: a claim served from the fresh table
// returns exactly what a claim reading the file returns.
func TestFreshClaimReadsLikeTheFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	now := time.Now() // with a monotonic reading
	must(t, s.SaveBatch(ctx, now, []trigger.Trigger{richTrigger("a", now), richTrigger("b", now)}))
	s.mu.Lock()
	if s.fresh.get("a") == nil || s.fresh.get("b") == nil {
		s.mu.Unlock()
		t.Fatal("saved triggers due now are not in the fresh table")
	}
	s.fresh.drop("b") // b's claim reads the file
	s.mu.Unlock()
	c := trigger.Claim{Owner: "o", Now: now, Until: now.Add(time.Minute)}
	a, err := s.Claim(ctx, "a", c)
	must(t, err)
	b, err := s.Claim(ctx, "b", c)
	must(t, err)
	b.ID, b.Token = a.ID, a.Token
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("claim from the fresh table:\n%+v\nclaim from the file:\n%+v", a, b)
	}
	s.mu.Lock()
	left := len(s.fresh.m)
	s.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d fresh entries left after the claims", left)
	}
}

// TestFreshTableFollowsWrites: every write of a record that is in the fresh
// table replaces or drops its entry, so a claim never sees an old record.
func TestFreshTableFollowsWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("canceled", t0), next("deleted", t0), next("later", at(time.Hour))}))
	must(t, s.Cancel(ctx, "canceled", t0))
	must(t, s.Delete(ctx, "deleted"))
	if _, err := s.Claim(ctx, "canceled", claimFor("o", t0)); !errors.Is(err, trigger.ErrInvalidState) {
		t.Errorf("claim of a canceled trigger: %v, want ErrInvalidState", err)
	}
	if _, err := s.Claim(ctx, "deleted", claimFor("o", t0)); !errors.Is(err, trigger.ErrNotFound) {
		t.Errorf("claim of a deleted trigger: %v, want ErrNotFound", err)
	}
	s.mu.Lock()
	n := len(s.fresh.m)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d fresh entries, want none (a trigger due in an hour is not kept)", n)
	}

	// A follow-up due now is kept; the finished trigger is not.
	must(t, s.Save(ctx, t0, next("first", t0)))
	c, err := s.Claim(ctx, "first", claimFor("o", t0))
	must(t, err)
	must(t, s.Finish(ctx, "first", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: t0,
		FollowUps: []trigger.Trigger{next("second", t0)}}))
	s.mu.Lock()
	first, second := s.fresh.get("first"), s.fresh.get("second")
	s.mu.Unlock()
	if first != nil || second == nil {
		t.Errorf("after Finish: fresh entry of the finished trigger %v, of its follow-up %v", first != nil, second != nil)
	}
}

// TestFreshTableIsBounded: past freshCap entries, the oldest go.
func TestFreshTableIsBounded(t *testing.T) {
	var f freshTable
	for i := range freshCap + 10 {
		f.add(string(rune('a'+i%26))+time.Duration(i).String(), &record{})
	}
	if len(f.m) != freshCap {
		t.Fatalf("%d entries, want %d", len(f.m), freshCap)
	}
	// An ID added again survives the eviction of its first insertion.
	var g freshTable
	g.add("x", &record{})
	for i := range freshCap - 1 {
		g.add(time.Duration(i).String(), &record{})
	}
	g.drop("x")
	g.add("x", &record{}) // evicts the slot of the first "x"
	if g.get("x") == nil {
		t.Fatal("the new entry of x was evicted with the old one")
	}
}
