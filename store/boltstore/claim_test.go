package boltstore

import (
	"errors"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// richTrigger uses every field a Save keeps, with times in another zone and
// with monotonic clock readings.
func richTrigger(id string, due time.Time) trigger.Trigger {
	created := due.Add(-time.Hour)
	zone := time.FixedZone("X", 5*3600)
	return trigger.Trigger{
		ID: id, Type: trigger.TypeLoop, InstanceID: "inst", ParentInstanceID: "parent", NodeID: "node", EdgeID: "edge",
		DueAt: due.In(zone), Payload: trigger.Payload{"n": 1.5, "s": "x"}, Priority: -3, Queue: "q",
		MaxAttempts: 4, Iteration: 2, Cron: "* * * * *", TimeZone: "Europe/Paris", Misfire: trigger.MisfireSkip,
		WaitKey: "wk", Machine: "small-1x", CreatedAt: created, LastError: "earlier",
		TraceContext: map[string]string{"traceparent": "00-abc-def-01"},
	}
}

// TestClaimedTriggerIsACopy: what the consumer does to the trigger a claim
// returned does not reach the stored record, which Finish builds on.
func TestClaimedTriggerIsACopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	now := time.Now()
	must(t, s.Save(ctx, now, richTrigger("a", now)))
	c, err := s.Claim(ctx, "a", trigger.Claim{Owner: "o", Now: now, Until: now.Add(time.Minute)})
	must(t, err)
	c.TraceContext["traceparent"] = "changed"
	c.Payload["n"] = 2
	must(t, s.Finish(ctx, "a", c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: now}))
	got, err := s.Get(ctx, "a")
	must(t, err)
	if got.TraceContext["traceparent"] != "00-abc-def-01" || got.Payload["n"] != 1.5 {
		t.Fatalf("stored trigger changed through the claimed copy: %v %v", got.TraceContext, got.Payload)
	}
	if got.State != trigger.StateCompleted || got.Attempt != 1 || got.Token != c.Token || got.LastError != "earlier" || got.Iteration != 2 {
		t.Fatalf("finished trigger: %+v", got)
	}
}

// TestExtendWhileFinishCommits: a heartbeat that comes while the run's own
// Finish awaits its commit keeps the lease (the outcome is on its way); one
// that comes after the commit, or after a Cancel, finds it lost.
func TestExtendWhileFinishCommits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	must(t, s.SaveBatch(ctx, t0, []trigger.Trigger{next("a", t0), next("b", t0)}))
	a, err := s.Claim(ctx, "a", claimFor("o", t0))
	must(t, err)
	b, err := s.Claim(ctx, "b", claimFor("o", t0))
	must(t, err)

	release := block(s)
	finished := make(chan error)
	go func() {
		finished <- s.Finish(ctx, "a", a.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: at(time.Second)})
	}()
	go func() { _ = s.Cancel(ctx, "b", at(time.Second)) }()
	for s.queued() < 2 {
		time.Sleep(time.Millisecond)
	}
	// The next group applies the Finish and the Cancel, then holds.
	held, gate := make(chan struct{}), make(chan struct{})
	s.writeLazy(func(*writeTx) error {
		close(held)
		<-gate
		return nil
	})
	release()
	<-held
	if err := s.Extend(ctx, "a", a.Token, at(time.Second), at(time.Minute)); err != nil {
		t.Errorf("Extend while the run's Finish commits: %v, want nil", err)
	}
	if err := s.Extend(ctx, "b", b.Token, at(time.Second), at(time.Minute)); !errors.Is(err, trigger.ErrLeaseLost) {
		t.Errorf("Extend after a Cancel: %v, want ErrLeaseLost", err)
	}
	close(gate)
	must(t, <-finished)
	if err := s.Extend(ctx, "a", a.Token, at(time.Second), at(time.Minute)); !errors.Is(err, trigger.ErrLeaseLost) {
		t.Errorf("Extend after the Finish committed: %v, want ErrLeaseLost", err)
	}
}
