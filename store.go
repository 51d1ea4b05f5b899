package trigger

import (
	"context"
	"time"
)

// Store persists triggers. It is the one point of coordination between
// schedulers: several schedulers (in one process or many) may share a store,
// and the claim is what keeps a trigger from running twice at once.
//
// A claim records an owner, a lease deadline and a fencing token. The token
// of a trigger grows on every claim; Extend and Finish succeed only with the
// token of the current claim, so an owner that was paused, partitioned or
// outlived its lease changes nothing once somebody else has claimed the
// trigger (it gets ErrLeaseLost).
//
// Stores never read the clock: every method that depends on time takes now.
// Every method is safe for concurrent use. Triggers passed in and returned
// are copies; a store keeps no reference to the caller's payload.
//
// Errors are the sentinels of this package, wrapped with detail: ErrNotFound,
// ErrDuplicate, ErrClaimed, ErrNotDue, ErrInvalidState, ErrLeaseLost and
// ErrInvalid. A store is checked with one call to storetest.Run.
type Store interface {
	// Save stores t with State t.InitialState(), CreatedAt now (unless set)
	// and UpdatedAt now. An ID already stored fails with ErrDuplicate; a
	// trigger that fails Validate or whose payload cannot be serialised
	// fails with ErrInvalid. On error nothing is stored.
	Save(ctx context.Context, now time.Time, t Trigger) error
	// SaveBatch stores every trigger of ts, or none: the batch is atomic.
	SaveBatch(ctx context.Context, now time.Time, ts []Trigger) error
	// Get returns the trigger with the given id.
	Get(ctx context.Context, id string) (Trigger, error)

	// Due returns up to q.Limit triggers that can be claimed by q.Until:
	// scheduled or retrying triggers with DueAt <= q.Until, and running
	// triggers whose lease ended at or before q.Now. They come ordered by
	// due time (the lease deadline for an expired lease), then by priority
	// (higher first), then by ID, starting after q.After when it is set (see
	// DueQuery.After).
	Due(ctx context.Context, q DueQuery) ([]Ref, error)
	// Claim takes a lease on the trigger for c.Owner until c.Until and
	// returns it running, with Attempt and Token incremented and Recovered
	// set when the claim took over an expired lease. A trigger held by a
	// live lease fails with ErrClaimed; one not yet due (or waiting) fails
	// with ErrNotDue unless c.Force is set; a final one fails with
	// ErrInvalidState.
	Claim(ctx context.Context, id string, c Claim) (Trigger, error)
	// Extend moves the lease deadline of a running trigger to until. A
	// token that is not the current one fails with ErrLeaseLost.
	Extend(ctx context.Context, id string, token uint64, now, until time.Time) error
	// Finish records the outcome of a run and saves o.FollowUps in the same
	// atomic operation. A token that is not the current one fails with
	// ErrLeaseLost; a follow-up whose ID exists fails with ErrDuplicate. On
	// error nothing changes.
	Finish(ctx context.Context, id string, token uint64, o Outcome) error

	// Cancel moves a trigger that is not final to canceled; a running
	// owner's later Extend or Finish fails with ErrLeaseLost. Canceling a
	// canceled trigger does nothing; canceling a completed or failed one
	// fails with ErrInvalidState.
	Cancel(ctx context.Context, id string, now time.Time) error
	// Requeue sends a failed or canceled trigger back to scheduled, due at
	// at, with Attempt reset to zero and LastError kept. Other states fail
	// with ErrInvalidState.
	Requeue(ctx context.Context, id string, now, at time.Time) error
	// Delete removes a trigger, whatever its state.
	Delete(ctx context.Context, id string) error
	// List returns up to q.Limit triggers in state q.State ordered by ID,
	// starting after q.After.
	List(ctx context.Context, q ListQuery) ([]Trigger, error)
	// Purge deletes up to q.Limit triggers in final state q.State whose
	// UpdatedAt is before q.Before, and returns how many it deleted.
	Purge(ctx context.Context, q PurgeQuery) (int, error)
}

// Ref locates a trigger in the due order.
type Ref struct {
	ID       string
	DueAt    time.Time
	Priority int
}

// DueQuery selects claimable triggers; see Store.Due.
type DueQuery struct {
	// Now decides which leases have expired.
	Now time.Time
	// Until is the latest due time returned; it may lie after Now, to look
	// ahead.
	Until time.Time
	// After, when its DueAt is set, resumes the order after that position.
	// An After with an empty ID stands after every trigger due at or before
	// After.DueAt, so a scan can ask for a time window.
	After Ref
	// Limit is the most triggers returned; it must be positive.
	Limit int
}

// Claim describes a claim; see Store.Claim.
type Claim struct {
	// Owner names the claimer, such as a scheduler's node ID. Required.
	Owner string
	// Now is the time of the claim.
	Now time.Time
	// Until is the lease deadline; it must be after Now.
	Until time.Time
	// Force claims a trigger that is not yet due or is waiting ([Scheduler.Fire]).
	Force bool
}

// OutcomeKind says how a run ended.
type OutcomeKind uint8

// The outcome kinds.
const (
	// OutcomeComplete: the run succeeded; the trigger becomes completed.
	OutcomeComplete OutcomeKind = iota + 1
	// OutcomeRetry: the run failed; the trigger becomes retrying, due at
	// Outcome.At, with LastError set to Outcome.Error.
	OutcomeRetry
	// OutcomeFail: the run failed for good; the trigger becomes failed with
	// LastError set to Outcome.Error.
	OutcomeFail
	// OutcomeReschedule: the run succeeded and the trigger runs again at
	// Outcome.At (a checkpoint, the next LOOP iteration or CRON
	// occurrence): it becomes scheduled with Attempt reset to zero,
	// Iteration incremented, and Payload replaced when Outcome.Payload is
	// not nil.
	OutcomeReschedule
	// OutcomeSnooze: the run gave the trigger back without using an attempt
	// (a snooze, or a release at shutdown): it becomes scheduled, due at
	// Outcome.At, with Attempt decremented.
	OutcomeSnooze
)

var outcomeNames = [...]string{"", "complete", "retry", "fail", "reschedule", "snooze"}

// String returns the lower-case name of the kind.
func (k OutcomeKind) String() string {
	if k >= OutcomeComplete && k <= OutcomeSnooze {
		return outcomeNames[k]
	}
	return "unknown"
}

// Outcome is what Finish records; see OutcomeKind.
type Outcome struct {
	Kind OutcomeKind
	// Now is the time of the write.
	Now time.Time
	// At is the new due time for Retry, Reschedule and Snooze.
	At time.Time
	// Error is the run's error for Retry and Fail.
	Error string
	// Payload replaces the trigger's payload on Reschedule when not nil.
	Payload Payload
	// FollowUps are saved together with the outcome, as by SaveBatch.
	FollowUps []Trigger
}

// ListQuery selects triggers by state; see Store.List.
type ListQuery struct {
	State State
	// After, when set, resumes after this ID.
	After string
	// Limit is the most triggers returned; it must be positive.
	Limit int
}

// PurgeQuery selects final triggers to delete; see Store.Purge.
type PurgeQuery struct {
	// State must be a final state.
	State State
	// Before: triggers updated before it are deleted.
	Before time.Time
	// Limit is the most triggers deleted; it must be positive.
	Limit int
}

// Validate reports whether q is a well-formed due query (an error wrapping
// ErrInvalid otherwise). Stores call it first.
func (q DueQuery) Validate() error {
	switch {
	case q.Limit <= 0:
		return invalidf("due query limit %d must be positive", q.Limit)
	case q.Now.IsZero() || q.Until.IsZero():
		return invalidf("due query needs Now and Until")
	}
	return checkTimes("due query", q.Now, q.Until)
}

// checkTimes reports a time outside [minDue, maxDue), the range every store
// can keep as int64 nanoseconds since 1970.
func checkTimes(what string, ts ...time.Time) error {
	for _, t := range ts {
		if !t.IsZero() && (t.Before(minDue) || !t.Before(maxDue)) {
			return invalidf("%s: time %v is outside [%v, %v)", what, t, minDue, maxDue)
		}
	}
	return nil
}

// Validate reports whether c is a well-formed claim (an error wrapping
// ErrInvalid otherwise). Stores call it first.
func (c Claim) Validate() error {
	switch {
	case c.Owner == "":
		return invalidf("claim needs an owner")
	case c.Now.IsZero():
		return invalidf("claim needs Now")
	case !c.Until.After(c.Now):
		return invalidf("claim lease deadline %v is not after now %v", c.Until, c.Now)
	}
	return checkTimes("claim", c.Now, c.Until)
}

// Validate reports whether o is a well-formed outcome (an error wrapping
// ErrInvalid otherwise), including every follow-up. Stores call it first.
func (o *Outcome) Validate() error {
	if o.Kind < OutcomeComplete || o.Kind > OutcomeSnooze {
		return invalidf("unknown outcome kind %d", o.Kind)
	}
	if o.Now.IsZero() {
		return invalidf("outcome needs Now")
	}
	switch o.Kind {
	case OutcomeRetry, OutcomeReschedule, OutcomeSnooze:
		if o.At.IsZero() {
			return invalidf("outcome %s needs a due time", o.Kind)
		}
	}
	if err := checkTimes("outcome", o.Now, o.At); err != nil {
		return err
	}
	for i := range o.FollowUps {
		if err := o.FollowUps[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports whether q is a well-formed list query.
func (q ListQuery) Validate() error {
	switch {
	case !q.State.Valid():
		return invalidf("list query: unknown state %d", q.State)
	case q.Limit <= 0:
		return invalidf("list query limit %d must be positive", q.Limit)
	}
	return nil
}

// Validate reports whether q is a well-formed purge query.
func (q PurgeQuery) Validate() error {
	switch {
	case !q.State.Final():
		return invalidf("purge query: state %s is not final", q.State)
	case q.Before.IsZero():
		return invalidf("purge query needs Before")
	case q.Limit <= 0:
		return invalidf("purge query limit %d must be positive", q.Limit)
	}
	return nil
}
