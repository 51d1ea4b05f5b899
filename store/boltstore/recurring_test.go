package boltstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// A process dies while an occurrence of a recurring trigger runs (its claim
// was written). After a restart every replica registers the trigger again:
// that changes nothing, and the interrupted occurrence is claimable at once,
// recovered, still standing for its planned time; its outcome writes the
// next occurrence. A paused trigger stays paused across the restart.
func TestRecurringAcrossARestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	nightly := trigger.Trigger{ID: "nightly", Type: trigger.TypeCron, Cron: "0 3 * * *", DueAt: at(3 * time.Hour)}
	paused := trigger.Trigger{ID: "paused", Type: trigger.TypeCron, Cron: "@hourly", DueAt: at(time.Hour)}
	for _, tr := range []trigger.Trigger{nightly, paused} {
		if res, err := s.Register(ctx, t0, tr); err != nil || res != trigger.RegisterCreated {
			t.Fatalf("Register(%s) = %v, %v", tr.ID, res, err)
		}
	}
	must(t, s.Pause(ctx, "paused", t0))
	first, err := s.Claim(ctx, "nightly", claimFor("node-1", at(3*time.Hour)))
	must(t, err)
	must(t, s.Close()) // stands for a crash after the claim's lazy write

	s = openTest(t, path, nil)
	again := nightly
	again.DueAt = at(27 * time.Hour) // computed by the restarted replica: ignored
	for _, tr := range []trigger.Trigger{again, paused} {
		if res, err := s.Register(ctx, at(4*time.Hour), tr); err != nil || res != trigger.RegisterUnchanged {
			t.Fatalf("Register(%s) after the restart = %v, %v; want unchanged", tr.ID, res, err)
		}
	}
	refs, err := s.Due(ctx, trigger.DueQuery{Now: at(4 * time.Hour), Until: at(4 * time.Hour), Limit: 10})
	must(t, err)
	if ids(refs) != "nightly" {
		t.Fatalf("Due after the restart = %v, want only nightly (paused stays paused)", refs)
	}
	run, err := s.Claim(ctx, "nightly", claimFor("node-2", at(4*time.Hour)))
	must(t, err)
	if !run.Recovered || run.Token <= first.Token || !run.PlannedAt.Equal(at(3*time.Hour)) || run.Attempt != 2 {
		t.Fatalf("recovered claim %+v; want Recovered, a newer token, PlannedAt 3h, attempt 2", run)
	}
	must(t, s.Finish(ctx, "nightly", run.Token, trigger.Outcome{
		Kind: trigger.OutcomeReschedule, Now: at(4 * time.Hour), At: at(27 * time.Hour), IfCron: &trigger.CronSpec{Cron: "0 3 * * *"},
	}))
	got, err := s.Get(ctx, "nightly")
	must(t, err)
	if got.State != trigger.StateScheduled || !got.DueAt.Equal(at(27*time.Hour)) || !got.PlannedAt.Equal(at(27*time.Hour)) || got.Iteration != 1 {
		t.Errorf("after the recovered run: %+v; want the next occurrence at 27h, iteration 1", got)
	}
	if p, err := s.Get(ctx, "paused"); err != nil || !p.Paused {
		t.Errorf("paused trigger after the restart: %+v, %v", p, err)
	}
}

// A CRON occurrence that checkpointed and parked in a token wait is on
// disk as it was across a restart: the registration of every replica
// leaves the wait alone, the resume reaches it, the run after it stands for
// the same occurrence with the checkpoint and the resume merged, and its
// outcome plans the next occurrence without the wait.
func TestRecurringWaitAcrossARestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "triggers.db")
	s, err := Open(path, nil)
	must(t, err)
	nightly := trigger.Trigger{ID: "nightly", Type: trigger.TypeCron, Cron: "0 3 * * *", DueAt: at(3 * time.Hour)}
	if res, err := s.Register(ctx, t0, nightly); err != nil || res != trigger.RegisterCreated {
		t.Fatalf("Register = %v, %v", res, err)
	}
	run, err := s.Claim(ctx, "nightly", claimFor("node-1", at(3*time.Hour)))
	must(t, err)
	must(t, s.Checkpoint(ctx, "nightly", run.Token, at(3*time.Hour+time.Second), trigger.Payload{"rows": 10.0}))
	due, err := s.Park(ctx, "nightly", run.Token, trigger.Park{Kind: trigger.WaitKindToken, Now: at(3*time.Hour + 2*time.Second), Key: "approve-03:00"})
	must(t, err)
	if !due.IsZero() {
		t.Fatalf("Park returned due %v, want none", due)
	}
	must(t, s.Close())

	s = openTest(t, path, nil)
	again := nightly
	again.DueAt = at(27 * time.Hour)
	if res, err := s.Register(ctx, at(4*time.Hour), again); err != nil || res != trigger.RegisterUnchanged {
		t.Fatalf("Register after the restart = %v, %v; want unchanged", res, err)
	}
	res, id, err := s.Resume(ctx, at(5*time.Hour), "approve-03:00", trigger.Payload{"approved": true})
	must(t, err)
	if res != trigger.ResumeDelivered || id != "nightly" {
		t.Fatalf("Resume = %v, %q", res, id)
	}
	run, err = s.Claim(ctx, "nightly", claimFor("node-2", at(5*time.Hour)))
	must(t, err)
	if !run.PlannedAt.Equal(at(3*time.Hour)) || !run.Wait.Resumed || run.Wait.Kind != trigger.WaitKindToken ||
		run.Payload["rows"] != 10.0 || run.Payload["approved"] != true || run.Attempt != 1 {
		t.Fatalf("the run after the wait: %+v; want the 3h occurrence, resumed, with the checkpoint and the resume", run)
	}
	must(t, s.Finish(ctx, "nightly", run.Token, trigger.Outcome{
		Kind: trigger.OutcomeReschedule, Now: at(5 * time.Hour), At: at(27 * time.Hour), IfCron: &trigger.CronSpec{Cron: "0 3 * * *"},
	}))
	got, err := s.Get(ctx, "nightly")
	must(t, err)
	if got.State != trigger.StateScheduled || !got.PlannedAt.Equal(at(27*time.Hour)) || got.Iteration != 1 || got.Wait != (trigger.Wait{}) {
		t.Errorf("after the occurrence: %+v; want the next one at 27h, iteration 1, no wait", got)
	}
}
