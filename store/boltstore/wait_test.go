package boltstore

import (
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// Finish builds the run's outcome on the lease's copy of the record
// (lease.rec), read before its write is queued. A Checkpoint that commits
// in between changes that copy, and the outcome is built again on it: the
// checkpointed payload survives the Finish.
func TestCheckpointCommittedWhileFinishIsQueued(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newTest(t)
	tr := next("a", t0)
	tr.Payload = trigger.Payload{"step": 0.0}
	must(t, s.Save(ctx, t0, tr))
	c, err := s.Claim(ctx, "a", claimFor("o", t0))
	must(t, err)

	release := block(s)
	q := s.queued()
	checkpointed := make(chan error)
	go func() {
		checkpointed <- s.Checkpoint(ctx, "a", c.Token, at(time.Second), trigger.Payload{"step": 5.0})
	}()
	for s.queued() < q+1 {
		time.Sleep(time.Millisecond)
	}
	finished := make(chan error)
	go func() { // its outcome is built before the Checkpoint commits
		finished <- s.Finish(ctx, "a", c.Token, trigger.Outcome{Kind: trigger.OutcomeRetry, Now: at(2 * time.Second), At: at(time.Minute), Error: "e"})
	}()
	for s.queued() < q+2 {
		time.Sleep(time.Millisecond)
	}
	release()
	must(t, <-checkpointed)
	must(t, <-finished)
	got, err := s.Get(ctx, "a")
	must(t, err)
	if got.State != trigger.StateRetrying || got.Payload["step"] != 5.0 {
		t.Fatalf("after the Finish: %v with payload %v; want retrying with the checkpoint", got.State, got.Payload)
	}
	// The next run starts from the checkpoint, and so does a wait.
	c, err = s.Claim(ctx, "a", claimFor("o", at(time.Minute)))
	must(t, err)
	must(t, s.Checkpoint(ctx, "a", c.Token, at(time.Minute+time.Second), trigger.Payload{"step": 6.0}))
	_, err = s.Park(ctx, "a", c.Token, trigger.Park{Kind: trigger.WaitKindTime, Now: at(time.Minute + 2*time.Second), Until: at(time.Hour)})
	must(t, err)
	if got, err := s.Get(ctx, "a"); err != nil || got.Payload["step"] != 6.0 || got.State != trigger.StateScheduled {
		t.Fatalf("after the Park: %+v, %v; want scheduled with the checkpoint", got, err)
	}
}
