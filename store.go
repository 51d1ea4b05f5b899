package trigger

import (
	"context"
	"fmt"
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
// ErrDuplicate, ErrClaimed, ErrNotDue, ErrInvalidState, ErrLeaseLost,
// ErrConflict and ErrInvalid. A store is checked with one call to
// storetest.Run.
type Store interface {
	// Save stores t with State t.InitialState(), PlannedAt t.DueAt,
	// CreatedAt now (unless set) and UpdatedAt now; Paused is false and
	// Delay is not kept. An ID already stored fails with ErrDuplicate; a
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
	// List returns up to q.Limit triggers in state q.State (and of type
	// q.Type when it is set) ordered by ID, starting after q.After.
	List(ctx context.Context, q ListQuery) ([]Trigger, error)
	// Purge deletes up to q.Limit triggers in final state q.State whose
	// UpdatedAt is before q.Before, and returns how many it deleted.
	Purge(ctx context.Context, q PurgeQuery) (int, error)

	// Register is the idempotent Save of recurring triggers, which every
	// replica of a service registers at start. With no trigger stored under
	// t.ID it saves t as Save does. Otherwise it compares t's definition
	// with the stored trigger's and, when they differ, updates the stored
	// trigger as Redefine says, in one atomic write; when they are the same
	// it changes nothing, so the stored due time (and any misfire it
	// implies) survives restarts. Bad input fails with ErrInvalid and
	// changes nothing.
	Register(ctx context.Context, now time.Time, t Trigger) (RegisterResult, error)
	// Pause sets Paused on a trigger that is not final: a paused scheduled
	// or retrying trigger is not returned by Due and not claimable without
	// Force; a paused running trigger keeps its lease and, when its run
	// ends, the outcome leaves it paused. Pausing a paused trigger does
	// nothing; a final one fails with ErrInvalidState.
	Pause(ctx context.Context, id string, now time.Time) error
	// Unpause clears Paused. A scheduled or retrying trigger becomes due
	// again: at its stored due time when at is zero, or else as a new plan,
	// scheduled at at with PlannedAt at and Attempt zero. A running
	// trigger only loses the flag. Unpausing a trigger that is not paused
	// does nothing; a final one fails with ErrInvalidState. With ifCron
	// set, the stored Cron and TimeZone must be ifCron's, or Unpause fails
	// with ErrConflict and changes nothing.
	Unpause(ctx context.Context, id string, now, at time.Time, ifCron *CronSpec) error
}

// RegisterResult says what Store.Register did.
type RegisterResult uint8

// The results of a registration.
const (
	// RegisterCreated: no trigger had the ID; it was saved.
	RegisterCreated RegisterResult = iota + 1
	// RegisterUpdated: the stored trigger had another definition and was
	// updated to the new one.
	RegisterUpdated
	// RegisterUnchanged: the stored trigger had the same definition; nothing
	// was written.
	RegisterUnchanged
)

var registerNames = [...]string{"", "created", "updated", "unchanged"}

// String returns the lower-case name of the result.
func (r RegisterResult) String() string {
	if r >= RegisterCreated && r <= RegisterUnchanged {
		return registerNames[r]
	}
	return "unknown"
}

// CronSpec is the recurring schedule of a trigger as a caller read it. A
// write conditional on it (Outcome.IfCron, Store.Unpause) is refused with
// ErrConflict, changing nothing, unless the stored trigger's Cron and
// TimeZone are still these: the scheduler computes the next occurrence from
// the spec it read, and a Register that changed the spec meanwhile must not
// be undone by a due time computed from the old one.
type CronSpec struct {
	Cron, TimeZone string
}

// Check returns nil when c is nil or matches t, and an error wrapping
// ErrConflict otherwise. Stores call it inside their atomic write.
func (c *CronSpec) Check(t *Trigger) error {
	if c == nil || (c.Cron == t.Cron && c.TimeZone == t.TimeZone) {
		return nil
	}
	return fmt.Errorf("%w: trigger %q has schedule %q in %q now, not %q in %q", ErrConflict, t.ID, t.Cron, t.TimeZone, c.Cron, c.TimeZone)
}

// Redefine is the rule of Store.Register for a stored trigger: it returns
// the trigger that registering t leaves in place of stored, and whether that
// is an update. samePayload tells whether t's payload is the stored one
// (stores compare their serialised forms); the returned trigger has t's
// payload when it has no wait, and a nil one when it has (see below).
//
// The definition is what a caller sets: Type, InstanceID, ParentInstanceID,
// NodeID, EdgeID, Payload, Priority, Queue, MaxAttempts, Cron, TimeZone,
// Misfire, Interval, MaxIterations, WaitKey and Machine. When it is
// unchanged, Register changes nothing. Otherwise the stored trigger takes the
// new definition, t's TraceContext and UpdatedAt now, and keeps its ID,
// CreatedAt, Iteration, LastError, Paused, wait fields and claim. Its due
// time changes only if the schedule (Type, Cron, TimeZone or Interval)
// changed, or if it was final (a changed registration revives a canceled or
// completed trigger): then a scheduled, retrying, waiting or final trigger
// becomes t.InitialState() at t.DueAt (PlannedAt too) with Attempt zero,
// and its Wait is cleared (a wait in progress is abandoned: a new plan
// starts afresh, as after a Reschedule). A running trigger keeps its state
// and due time: its run finishes, and the outcome (conditional on the spec
// it was computed from, see CronSpec) uses the new schedule.
//
// Waits (see WaitStore): the store owns ParentID and Wait, and WaitKey too
// once a wait bound it (Wait.Kind is set) and for the types that do not
// wait when saved (all but MANUAL and EVENT: only a WaitFor sets theirs).
// Such a WaitKey is neither compared nor replaced, so that registering a
// CRON trigger again (every replica does, at start) leaves a WaitFor in
// progress as it is. Nor is the payload while the stored trigger has a wait
// (Wait.Kind is set from its park until it moves on to a new plan): it holds
// what the run checkpointed and the resumes delivered, which a registration
// must not wipe. A store therefore writes t's payload only when the
// returned trigger has no wait, and keeps its own otherwise; a registration
// after the occurrence ended puts the registered payload back.
func Redefine(stored, t Trigger, samePayload bool, now time.Time) (Trigger, RegisterResult) {
	keyOwned := stored.Wait.Kind != WaitKindNone || !stored.Type.waitsForever()
	runPayload := stored.Wait.Kind != WaitKindNone
	if (samePayload || runPayload) && sameDefinition(&stored, &t, keyOwned) {
		return stored, RegisterUnchanged
	}
	u := stored
	u.Type, u.InstanceID, u.ParentInstanceID, u.NodeID, u.EdgeID = t.Type, t.InstanceID, t.ParentInstanceID, t.NodeID, t.EdgeID
	u.Payload, u.Priority, u.Queue, u.MaxAttempts = t.Payload, t.Priority, t.Queue, t.MaxAttempts
	u.Cron, u.TimeZone, u.Misfire, u.Interval, u.MaxIterations = t.Cron, t.TimeZone, t.Misfire, t.Interval, t.MaxIterations
	u.Machine, u.TraceContext = t.Machine, t.TraceContext
	if !keyOwned {
		u.WaitKey = t.WaitKey
	}
	u.UpdatedAt = now
	reschedule := stored.Type != t.Type || stored.Cron != t.Cron || stored.TimeZone != t.TimeZone || stored.Interval != t.Interval
	if (reschedule || stored.State.Final()) && stored.State != StateRunning {
		u.State, u.DueAt, u.PlannedAt, u.Attempt = t.InitialState(), t.DueAt, t.DueAt, 0
		u.Wait = Wait{}
	}
	if u.Wait.Kind != WaitKindNone {
		u.Payload = nil // the stored one stays
	}
	return u, RegisterUpdated
}

// sameDefinition compares the definitions of a and b (WaitKey only when
// the store does not own it).
func sameDefinition(a, b *Trigger, keyOwned bool) bool {
	return a.Type == b.Type && a.InstanceID == b.InstanceID && a.ParentInstanceID == b.ParentInstanceID &&
		a.NodeID == b.NodeID && a.EdgeID == b.EdgeID && a.Priority == b.Priority && a.Queue == b.Queue &&
		a.MaxAttempts == b.MaxAttempts && a.Cron == b.Cron && a.TimeZone == b.TimeZone && a.Misfire == b.Misfire &&
		a.Interval == b.Interval && a.MaxIterations == b.MaxIterations && (keyOwned || a.WaitKey == b.WaitKey) && a.Machine == b.Machine
}

// BatchFinisher is an optional capability of a Store whose writes are
// costly (a disk sync, a network round trip): recording many run outcomes
// in one call. With such a store, workers hand the outcomes of their runs
// to one goroutine that records them in groups (bbolt: one commit; a SQL
// store: one round trip) and go on to the next trigger; with another store,
// each worker records its own outcome with Finish.
//
// A Store type that wraps another by embedding it (to instrument Finish,
// say) gets the embedded store's FinishBatch promoted: override FinishBatch
// as well, or the scheduler's outcomes bypass the wrapper's Finish.
type BatchFinisher interface {
	// FinishBatch records each outcome of fs as Finish would and returns
	// one error per element of fs, nil where the outcome was recorded. The
	// outcomes are independent: one that fails (a stale token, a duplicate
	// follow-up) changes nothing and leaves the others to succeed.
	FinishBatch(ctx context.Context, fs []Finishing) []error
}

// Finishing is one outcome for BatchFinisher: what Finish takes.
type Finishing struct {
	ID      string
	Token   uint64
	Outcome Outcome
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
	// Now is the time of the claim: a trigger due after it is not due yet.
	// A scheduler claiming ahead of a trigger's due time (see
	// Config.ClaimAhead) passes the due time, when the run will start, so
	// that a trigger moved later meanwhile is refused.
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
	// Outcome.At (PlannedAt kept), with LastError set to Outcome.Error.
	OutcomeRetry
	// OutcomeFail: the run failed for good; the trigger becomes failed with
	// LastError set to Outcome.Error.
	OutcomeFail
	// OutcomeReschedule: the run is over and the trigger runs again at
	// Outcome.At (a checkpoint, the next LOOP iteration or CRON
	// occurrence): it becomes scheduled, due and planned (PlannedAt) at
	// Outcome.At, with Attempt reset to zero, Iteration incremented,
	// Payload replaced when Outcome.Payload is not nil, and LastError set
	// to Outcome.Error when that is not empty (a CRON occurrence that
	// failed for good moves on to the next one with its error recorded).
	OutcomeReschedule
	// OutcomeSnooze: the run gave the trigger back without using an attempt
	// (a snooze, or a release at shutdown): it becomes scheduled, due at
	// Outcome.At, with Attempt decremented and PlannedAt kept.
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
	// Error is the run's error for Retry and Fail, and for a Reschedule
	// that moves past a failed occurrence.
	Error string
	// Payload replaces the trigger's payload on Reschedule when not nil.
	Payload Payload
	// FollowUps are saved together with the outcome, as by SaveBatch.
	FollowUps []Trigger
	// IfCron, when set, makes the outcome conditional on the trigger's
	// schedule (see CronSpec): it is refused with ErrConflict, changing
	// nothing and leaving the claim usable, when the stored Cron or
	// TimeZone differ.
	IfCron *CronSpec
}

// ListQuery selects triggers by state; see Store.List.
type ListQuery struct {
	State State
	// Type, when set, selects only triggers of that type.
	Type Type
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
		if !t.IsZero() && !dueInRange(t) {
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
	case q.Type != 0 && !q.Type.Valid():
		return invalidf("list query: unknown type %d", q.Type)
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
