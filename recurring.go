package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Recurring triggers: CRON and LOOP.
//
// A recurring trigger is one record in the store. Each occurrence (each
// iteration of a LOOP) is claimed like any trigger, and the outcome of its
// run writes the next one into the same record, in the same atomic store
// write: there is nothing to coordinate between nodes but the claim, so an
// occurrence runs once cluster-wide (at least once if a node dies mid-run)
// without leader election.

// Register registers a recurring CRON trigger, idempotently: every replica of
// a service may register "nightly-report" with "0 3 * * *" at start, and the
// store holds one trigger. t.ID is required (it is what makes the
// registration idempotent); a zero Type is TypeCron, any other type is bad
// input. The first occurrence is the first after now, unless DueAt or Delay
// say otherwise.
//
// Registering an ID whose stored trigger has the same definition changes
// nothing (RegisterUnchanged): in particular its next due time stays, so
// occurrences missed while every replica was down are still handled by the
// misfire policy. Registering a changed definition updates the stored
// trigger in one atomic store write (RegisterUpdated), as Redefine says: a
// changed spec (Cron, TimeZone) moves the next due time to the first
// occurrence of the new spec after now; a run in progress finishes under the
// spec it started with, and the occurrence after it comes from the new one.
// Other changes (payload, node, priority, ...) keep the due time and apply
// from the next run. A registration does not undo a Pause; a changed
// registration revives a canceled trigger.
//
// A bad spec, an unknown time zone or an interval below the tick gets an
// error wrapping ErrInvalid and changes nothing.
func (s *Scheduler) Register(ctx context.Context, t Trigger) (RegisterResult, error) {
	if s.isStopped() {
		return 0, ErrStopped
	}
	if t.Type == 0 {
		t.Type = TypeCron
	}
	switch {
	case t.Type != TypeCron:
		return 0, invalidf("Register takes CRON triggers, not %s; use Schedule", t.Type)
	case t.ID == "":
		return 0, invalidf("Register needs the trigger's ID, such as \"nightly-report\": the ID is what makes registering from every replica idempotent")
	}
	now := time.Now()
	prepare(&t, now)
	if err := s.prepareRecurring(&t, now); err != nil {
		return 0, err
	}
	res, err := s.store.Register(ctx, now, t)
	if err != nil {
		return 0, fmt.Errorf("register %q: %w", t.ID, err)
	}
	switch res {
	case RegisterCreated:
		yieldIf(s.armTrigger(&t, t.DueAt, false, now))
	case RegisterUpdated:
		if stored, err := s.store.Get(ctx, t.ID); err == nil && !stored.Paused {
			yieldIf(s.armTrigger(&stored, stored.DueAt, false, time.Now()))
		}
	}
	return res, nil
}

// Pause pauses a trigger, typically a CRON or LOOP trigger: it is not run
// when due until Unpause. A run in progress (here or on another node)
// finishes, and its next occurrence is written but waits. Fire still runs a
// paused trigger once, and it stays paused. Pausing a paused trigger does
// nothing; a final one gets ErrInvalidState.
func (s *Scheduler) Pause(ctx context.Context, id string) error {
	if id == "" {
		return invalidf("Pause: empty id")
	}
	if s.isStopped() {
		return ErrStopped
	}
	if err := s.store.Pause(ctx, id, time.Now()); err != nil {
		return fmt.Errorf("pause %q: %w", id, err)
	}
	return nil
}

// Unpause undoes Pause. A CRON trigger is then due at the first occurrence
// of its spec after now: occurrences that passed while it was paused are not
// misfires, they were paused. Other triggers are due at their stored due
// time (at once if it passed), and so is a CRON trigger paused in the middle
// of an occurrence that waited (WaitUntil, WaitFor, WaitChildren): the
// occurrence goes on when its wait ends, or at once if it has. Unpausing a
// trigger that is not paused does nothing; a final one gets
// ErrInvalidState.
func (s *Scheduler) Unpause(ctx context.Context, id string) error {
	if id == "" {
		return invalidf("Unpause: empty id")
	}
	if s.isStopped() {
		return ErrStopped
	}
	for range 5 {
		t, err := s.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("unpause %q: %w", id, err)
		}
		now := time.Now()
		var at time.Time
		var guard *CronSpec
		if t.Type == TypeCron && t.Paused && t.State != StateRunning && t.Wait.Kind == WaitKindNone {
			sched, err := s.schedule(&t)
			if err != nil {
				return fmt.Errorf("unpause %q: %w", id, err)
			}
			at, guard = sched.Next(now), &CronSpec{Cron: t.Cron, TimeZone: t.TimeZone}
			if at.IsZero() {
				at = now // the schedule has ended: its last run completes it
			}
		}
		err = s.store.Unpause(ctx, id, now, at, guard)
		if errors.Is(err, ErrConflict) {
			continue // registered anew meanwhile: read the new spec
		}
		if err != nil {
			return fmt.Errorf("unpause %q: %w", id, err)
		}
		if t, err := s.store.Get(ctx, id); err == nil && !t.Paused && (t.State == StateScheduled || t.State == StateRetrying) {
			yieldIf(s.armTrigger(&t, t.DueAt, false, time.Now()))
		}
		return nil
	}
	return fmt.Errorf("unpause %q: %w: its schedule keeps changing", id, ErrConflict)
}

// Recurring returns the CRON triggers that are not final (scheduled,
// retrying or running, paused or not), ordered by ID: DueAt is the next
// occurrence (the retry, for a retrying one; for a running one the
// occurrence being run, whose outcome writes the next), PlannedAt the
// occurrence it stands for, Iteration how many occurrences have passed, and
// LastError the error of the last failed run. It reads every scheduled
// trigger of the store: an admin call, not one for a hot path.
func (s *Scheduler) Recurring(ctx context.Context) ([]Trigger, error) {
	var all []Trigger
	for _, st := range []State{StateScheduled, StateRetrying, StateRunning} {
		q := ListQuery{State: st, Type: TypeCron, Limit: s.cfg.ScanLimit}
		for {
			ts, err := s.store.List(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("recurring: %w", err)
			}
			all = append(all, ts...)
			if len(ts) < q.Limit {
				break
			}
			q.After = ts[len(ts)-1].ID
		}
	}
	slices.SortFunc(all, func(a, b Trigger) int { return strings.Compare(a.ID, b.ID) })
	return all, nil
}

// occurrence is what a run of a CRON trigger stands for, decided when it is
// claimed.
type occurrence struct {
	sched Schedule
	// spec is the schedule the run was claimed with: the condition of its
	// outcome (Outcome.IfCron).
	spec CronSpec
	Occurrence
	// base is the time after which the next occurrence is looked for: the
	// scheduled time, or the start of a MisfireFireOnce catch-up run (which
	// stands for every occurrence missed until then).
	base time.Time
	// early: fired before its planned time (or while paused), the run
	// stands for no occurrence, and the planned one stays due.
	early bool
}

// claimed decides what a claimed recurring trigger's run stands for, and
// applies the misfire policy. A non-nil outcome means the run does not
// happen: the outcome is recorded instead (occurrences skipped, or a spec
// this scheduler cannot read).
func (s *Scheduler) claimed(t *Trigger, now time.Time) (*occurrence, *Outcome) {
	if t.Type != TypeCron {
		return nil, nil
	}
	sched, err := s.schedule(t)
	if err != nil {
		// Another node may know the named schedule (a rolling deploy):
		// give the trigger back for a while rather than fail it.
		s.logRun(t, slog.LevelError, "cannot read the trigger's schedule; giving it back for a minute", slog.Any("error", err))
		return nil, &Outcome{Kind: OutcomeSnooze, Now: now, At: now.Add(time.Minute)}
	}
	if t.PlannedAt.IsZero() {
		t.PlannedAt = t.DueAt // a store that does not keep PlannedAt
	}
	oc := &occurrence{sched: sched, spec: CronSpec{Cron: t.Cron, TimeZone: t.TimeZone}, Occurrence: Occurrence{Scheduled: t.PlannedAt}, base: t.PlannedAt}
	switch {
	case t.Paused && !t.Recovered:
		// Fired while paused: a run by hand, which stands for no
		// occurrence (Unpause plans the next one).
		oc.early = true
		return oc, nil
	case t.DueAt.After(now):
		oc.early = t.PlannedAt.After(now)
		return oc, nil
	case t.Wait.Kind != WaitKindNone:
		// The run goes on with an occurrence that parked in a wait (the
		// wait is cleared when the trigger moves on to its next
		// occurrence): its first run was the occurrence's, and the misfire
		// policy was applied to it then. However late the wait ended, the
		// occurrence is not skipped halfway, and the next one still comes
		// after the one it stands for. (A waiting trigger without a
		// timeout, fired, has no due time.)
		oc.early = t.PlannedAt.After(now)
		return oc, nil
	}
	if now.Sub(t.DueAt) <= s.cfg.MisfireGrace {
		return oc, nil
	}
	oc.CatchUp = true
	policy := t.Misfire
	if policy == MisfireDefault {
		policy = s.cfg.Misfire
	}
	ifCron := &oc.spec
	switch {
	case policy == MisfireFireOnce:
		oc.base = now
	case t.Recovered:
		// A run cut off by a crash runs again, whatever the policy.
	case policy == MisfireSkip:
		next := sched.Next(now)
		s.logRun(t, slog.LevelInfo, "misfire: skipping missed occurrences", slog.Time("scheduled", t.PlannedAt), slog.Time("next", next))
		if next.IsZero() {
			return nil, &Outcome{Kind: OutcomeComplete, Now: now, IfCron: ifCron}
		}
		return nil, &Outcome{Kind: OutcomeReschedule, Now: now, At: next, IfCron: ifCron}
	case policy == MisfireFireAll:
		if from, skipped := catchUpStart(sched, t.PlannedAt, now, s.cfg.MisfireCap); skipped {
			s.logRun(t, slog.LevelInfo, "misfire: more occurrences missed than MisfireCap; skipping the oldest", slog.Time("scheduled", t.PlannedAt), slog.Time("catch_up_from", from))
			return nil, &Outcome{Kind: OutcomeReschedule, Now: now, At: from, IfCron: ifCron}
		}
	}
	return oc, nil
}

// catchUpStart returns where a MisfireFireAll catch-up of at most limit runs
// starts, when the occurrences from first (included) to now were missed:
// first if there are at most limit of them, else the oldest of the newest
// limit, with skipped set. It gallops back from now in doubling windows, so
// a schedule of every second missed for a year costs a few hundred Next
// calls, not thirty million.
func catchUpStart(sched Schedule, first, now time.Time, limit int) (time.Time, bool) {
	ring := make([]time.Time, limit)
	// collect keeps the newest limit occurrences from o to now in ring and
	// returns how many it saw, oldest at ring[n%limit] once n >= limit.
	collect := func(o time.Time) int {
		n := 0
		for ; !o.IsZero() && !o.After(now) && n < 1<<24; o = sched.Next(o) {
			ring[n%limit] = o
			n++
		}
		return n
	}
	for w := time.Second; w < now.Sub(first) && w < 1<<62; w *= 2 {
		if n := collect(sched.Next(now.Add(-w))); n >= limit {
			return ring[n%limit], true
		}
	}
	n := collect(first)
	if n <= limit {
		return first, false
	}
	return ring[n%limit], true
}

// recur turns the outcome of a run of a recurring trigger into the write
// that moves it on. err is what the consumer returned.
//
// CRON: a success, or a failure with no attempt left, writes the next
// occurrence (with the error kept as LastError): an occurrence never fails
// the trigger for good. Retries and snoozes stay on the occurrence, keeping
// PlannedAt. The next occurrence is the first after the one the run stands
// for, so occurrences that passed during a long run (or its retries) come
// due at once, late: misfires, handled by the policy when claimed. Runs
// never overlap.
//
// LOOP: nil runs the next iteration Interval from now, until MaxIterations;
// Complete (or Fail, or running out of attempts) ends the loop.
func (s *Scheduler) recur(t *Trigger, o *Outcome, err error, oc *occurrence) {
	switch t.Type {
	case TypeLoop:
		if err == nil && o.Kind == OutcomeComplete {
			if t.MaxIterations == 0 || t.Iteration+1 < t.MaxIterations {
				o.Kind, o.At = OutcomeReschedule, o.Now.Add(t.Interval)
			}
		}
	case TypeCron:
		if oc == nil {
			return
		}
		oc.spec = CronSpec{Cron: t.Cron, TimeZone: t.TimeZone} // t's spec is read anew after a conflict
		o.IfCron = &oc.spec
		if o.Kind != OutcomeComplete && o.Kind != OutcomeFail {
			return
		}
		next := oc.sched.Next(oc.base)
		if oc.early {
			next = t.PlannedAt
		}
		if next.IsZero() {
			return // the schedule has ended: complete (or fail) for good
		}
		o.Kind, o.At = OutcomeReschedule, next
	}
}
