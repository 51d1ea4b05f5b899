package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"
)

// Waits.
//
// A consumer parks its trigger by returning a wait directive: [WaitUntil]
// (a time), [WaitFor] (a token delivered by [Scheduler.Resume], with an
// optional timeout) or [WaitChildren] (child triggers, created with the
// wait in one atomic store write). A parked trigger holds no worker and no
// lease; the wait is in the store, so it survives restarts. When the wait
// ends the trigger runs again, as a fresh run (Attempt starts over), and the
// consumer reads how the wait ended with [WaitResultFrom].
//
// Waits need a store that implements [WaitStore]; memstore and boltstore
// do.

// maxWaitKey bounds a wait token (Trigger.WaitKey).
const maxWaitKey = 1024

// WaitKind says what a trigger waits for.
type WaitKind uint8

// The wait kinds.
const (
	// WaitKindNone: the trigger has never waited.
	WaitKindNone WaitKind = iota
	// WaitKindTime: parked until a time ([WaitUntil]). The trigger is
	// scheduled at that time.
	WaitKindTime
	// WaitKindToken: parked until [Scheduler.Resume] delivers its WaitKey
	// ([WaitFor], or a MANUAL or EVENT trigger saved with a WaitKey), or
	// until its timeout. The trigger is waiting.
	WaitKindToken
	// WaitKindChildren: parked until every child of its batch is final
	// ([WaitChildren]). The trigger is waiting.
	WaitKindChildren
)

var waitKindNames = [...]string{"none", "time", "token", "children"}

// String returns the lower-case name of the kind.
func (k WaitKind) String() string {
	if k.Valid() {
		return waitKindNames[k]
	}
	return fmt.Sprintf("WaitKind(%d)", uint8(k))
}

// Valid reports whether k is one of the defined kinds.
func (k WaitKind) Valid() bool { return k <= WaitKindChildren }

// Wait is the wait a trigger is parked in, or the last one it came out of.
// The store keeps it in Trigger.Wait; the token is Trigger.WaitKey.
type Wait struct {
	// Kind is what the trigger waits for; WaitKindNone if it never waited.
	Kind WaitKind
	// Until is when a WaitKindTime ends, or the timeout of a WaitKindToken (zero:
	// none).
	Until time.Time
	// Resumed is set when Resume delivered the token of a WaitKindToken.
	Resumed bool
	// Pending counts the children of a WaitKindChildren not yet final.
	Pending int
}

// WaitOutcome says how a wait ended.
type WaitOutcome uint8

// The wait outcomes.
const (
	// WaitResumed: the wait ended as asked: its time came, its token was
	// delivered, or every child reached a final state.
	WaitResumed WaitOutcome = iota + 1
	// WaitTimedOut: the timeout of a WaitFor passed before its token came.
	// It happens once: a token delivered later gets ResumeTooLate.
	WaitTimedOut
	// WaitFired: the trigger ran before its wait ended: [Scheduler.Fire]
	// ran it, or [Scheduler.Retry] ran it again after [Scheduler.Cancel]
	// took it out of the wait. Either way its time, token or children did
	// not come; the run decides what to do without them.
	WaitFired
)

var waitOutcomeNames = [...]string{"", "resumed", "timed out", "fired"}

// String returns the lower-case name of the outcome.
func (o WaitOutcome) String() string {
	if o >= WaitResumed && o <= WaitFired {
		return waitOutcomeNames[o]
	}
	return fmt.Sprintf("WaitOutcome(%d)", uint8(o))
}

// WaitResult is how the last wait of the trigger being run ended.
type WaitResult struct {
	Kind    WaitKind
	Outcome WaitOutcome
	// Token is the token of a WaitKindToken.
	Token string
	// Until is the time of a WaitKindTime or the timeout of a WaitKindToken.
	Until time.Time
	// Children are the children of a WaitKindChildren (of that wait alone,
	// not of a wait the trigger left before), ordered by ID, as stored when
	// the run started: each one's State (final once the wait resumed),
	// LastError and Payload are its outcome.
	Children []Trigger
}

// WaitResultFrom returns how the wait of the trigger run in ctx ended; ok
// is false outside a run and for a trigger that never waited. A run that
// is retried after its wait ended (an error, a crash) sees the same result.
func WaitResultFrom(ctx context.Context) (r WaitResult, ok bool) {
	h, ok := ctx.Value(runKey{}).(*runContext)
	if !ok || h.wait == nil {
		return WaitResult{}, false
	}
	r = *h.wait
	r.Children = append([]Trigger(nil), r.Children...)
	return r, true
}

// waitSpec is the wait a directive asks for.
type waitSpec struct {
	kind     WaitKind
	at       time.Time     // WaitKindTime
	key      string        // WaitKindToken
	timeout  time.Duration // WaitKindToken; zero for none
	children []Trigger     // WaitKindChildren
}

// WaitUntil ends the run and parks the trigger until at (a time in the past
// means now), without holding a worker. The trigger is scheduled at at and
// runs again as a fresh run, with [WaitResultFrom] reporting WaitResumed.
// Save progress first with [Checkpoint] if the next run needs it.
func WaitUntil(at time.Time) error {
	return &Directive{wait: &waitSpec{kind: WaitKindTime, at: at}}
}

// WaitFor ends the run and parks the trigger until [Scheduler.Resume]
// delivers token, whose payload is then merged into the trigger's
// (top-level keys of the resume payload win). The merge is for good: the
// occurrences of a CRON trigger after this one see it too, until the
// trigger is registered again with its own payload (a registration that
// reports an update). A resume that came before
// the wait is kept by the store and ends the wait at once. With a positive
// timeout the wait also ends after timeout, once, with the outcome
// WaitTimedOut; zero waits forever. The token must be unique to this wait:
// one token resumes one waiter.
func WaitFor(token string, timeout time.Duration) error {
	return &Directive{wait: &waitSpec{kind: WaitKindToken, key: token, timeout: timeout}}
}

// WaitChildren ends the run, creates children and parks the trigger until
// every child has reached a final state (completed, failed or canceled),
// all in one atomic store write: either the wait and every child are
// stored, or nothing is (and the trigger fails, as for an invalid
// follow-up). Each child is a sub-flow: an empty InstanceID gets a new ID,
// an empty ParentInstanceID the parent's InstanceID, and ParentID is set to
// the parent trigger; the other defaults are those of [Scheduler.Schedule].
// When the parent runs again, [WaitResultFrom] lists each child with its
// outcome. A parent taken out of the wait before its children end
// ([Scheduler.Fire], or [Scheduler.Cancel] and [Scheduler.Retry]) leaves
// them running, but they no longer count: a later WaitChildren waits for
// its own children alone.
func WaitChildren(children ...Trigger) error {
	return &Directive{wait: &waitSpec{kind: WaitKindChildren, children: children}}
}

// ErrConcurrentWait is the error of a run that asked for more than one
// wait, or for a wait and another directive, at once (for example by
// returning errors.Join(WaitFor(...), WaitChildren(...))). The rule: a
// run ends in at most one directive, so a trigger waits for one thing at a
// time; to wait for several tokens or children, wait for them in turn or
// put them in one WaitChildren batch. The trigger fails for good with this
// error: retrying would ask the same.
var ErrConcurrentWait = errors.New("trigger: one wait at a time: a run may end in at most one directive, and a wait (WaitUntil, WaitFor, WaitChildren) cannot be combined with another")

// ResumeResult says what [Scheduler.Resume] did.
type ResumeResult uint8

// The resume results.
const (
	// ResumeDelivered: a trigger waited for the token; it is resumed with
	// the payload merged and runs now.
	ResumeDelivered ResumeResult = iota + 1
	// ResumeStored: nothing waits for the token yet; the store keeps the
	// resume, and the first wait for the token ends at once with it.
	ResumeStored
	// ResumeDuplicate: the token was resumed before (delivered or stored);
	// nothing changed. The store remembers a token for Config.Retention
	// once no trigger waits for it: a duplicate later than that is
	// ResumeStored (see Scheduler.Resume).
	ResumeDuplicate
	// ResumeTooLate: the wait for the token ended without it (it timed
	// out, or the trigger was fired, canceled or deleted); nothing
	// changed. Past Config.Retention, as for ResumeDuplicate, the resume
	// is stored instead.
	ResumeTooLate
)

var resumeNames = [...]string{"", "delivered", "stored", "duplicate", "too late"}

// String returns the lower-case name of the result.
func (r ResumeResult) String() string {
	if r >= ResumeDelivered && r <= ResumeTooLate {
		return resumeNames[r]
	}
	return fmt.Sprintf("ResumeResult(%d)", uint8(r))
}

// WaitStore is a [Store] that can park triggers in waits. The scheduler
// needs it for the wait directives, [Scheduler.Resume], [Checkpoint] and
// [Scheduler.Children]; both stores of this module implement it, and
// storetest.Run checks it when a store does.
//
// Beyond the Store contract:
//
//   - A waiting trigger with a due time (a WaitFor with a timeout) is due
//     then: Due returns it and a claim without Force takes it.
//   - Save of a waiting trigger (MANUAL or EVENT without a due time) with a
//     WaitKey binds the key to it as Park with WaitKindToken does (Wait.Kind
//     becomes WaitKindToken), and fails with ErrDuplicate when another trigger
//     holds the key.
//   - Save ignores ParentID and Wait, which the store owns.
//   - When a trigger with a ParentID reaches a final state (Finish with
//     Complete or Fail, Cancel) or is deleted before, the parent's
//     Wait.Pending drops by one, once per child, if the parent still waits
//     in the children wait that created the child; when it reaches zero,
//     the parent becomes scheduled, due at the time of that write. A
//     parent that left that wait (by a claim with Force, Cancel, a
//     Register that plans it anew, or a Delete and a Save of its ID) never
//     waits in it again, even once it parks on other children: the end of
//     a child of a wait its parent left changes nothing but the child.
//   - Finish with Reschedule clears Wait; other outcomes keep it, so a
//     retried run sees the same wait result.
//   - A wait is part of the run that parked: Park, and the end of the wait
//     (a resume, the last child), keep PlannedAt, as a retry does; a
//     trigger saved waiting, which has none, is planned when its wait ends.
//     They keep Paused too: a paused trigger in a wait is not due at its
//     timeout, and once its wait ended, not due until unpaused.
type WaitStore interface {
	Store
	// Park ends the run of trigger id like Finish (token-fenced:
	// ErrLeaseLost when token is not the current claim) and parks it as p
	// says, in one atomic write. The trigger's Attempt starts over, its
	// Wait becomes p's, and:
	//
	//   - WaitKindTime: it is scheduled at p.Until.
	//   - WaitKindToken: its WaitKey becomes p.Key. If a resume of the key is
	//     stored, or the key was delivered to this trigger before, it is
	//     scheduled at p.Now with the payload merged and Wait.Resumed set,
	//     and the key counts as delivered. Otherwise it is waiting, due at
	//     p.Until when that is set. A key held or used by another trigger
	//     fails with ErrDuplicate.
	//   - WaitKindChildren: the children are stored as by SaveBatch, with
	//     ParentID set to id; Wait.Pending is their number and the trigger
	//     is waiting. An ID already stored fails with ErrDuplicate.
	//
	// It returns the trigger's new due time: zero when it waits without
	// one. On error nothing changes.
	Park(ctx context.Context, id string, token uint64, p Park) (time.Time, error)
	// Resume delivers key with payload at now: see ResumeResult for the
	// cases. For ResumeDelivered it also returns the ID of the resumed
	// trigger, which is scheduled at now with payload merged into its own
	// and Wait.Resumed set.
	Resume(ctx context.Context, now time.Time, key string, payload Payload) (ResumeResult, string, error)
	// Children returns the children of the last children wait of trigger
	// parentID (the triggers its last Park with WaitKindChildren stored),
	// ordered by ID; none for a trigger that never parked on children.
	// The children of an earlier wait, which it left or which ended, are
	// not listed, though their ParentID is parentID too.
	Children(ctx context.Context, parentID string) ([]Trigger, error)
	// Checkpoint replaces the payload of a running trigger, fenced by token
	// like Extend; nothing else changes. It is durable when it returns.
	Checkpoint(ctx context.Context, id string, token uint64, now time.Time, payload Payload) error
	// PurgeTokens deletes up to limit token records that no trigger waits
	// for and that last changed before before, and returns how many it
	// deleted.
	//
	// A token record is what makes Resume idempotent and keeps a resume
	// that comes before its waiter: the store writes one the first time it
	// sees a key (a resume, or a trigger waiting for it) and stamps it with
	// the time of every change: the now of an early resume, of the write
	// that binds the key to a waiter (Park, or the Save of a waiting
	// trigger: its UpdatedAt), of a delivery. A duplicate or too-late
	// Resume changes nothing, the stamp included.
	//
	// A trigger waits for a token while it is waiting with that WaitKey in
	// a WaitKindToken wait not yet resumed (the trigger Resume would
	// deliver to): that token is never purged, however old. Every other
	// token may be: an early resume no waiter took, a delivered token, the
	// token of a wait that ended otherwise, of a trigger that moved on to
	// another key, or of one that is gone. Once purged, a key is new to the
	// store: a Resume of it is stored (ResumeStored) instead of being a
	// duplicate or too late, and any trigger may wait for it.
	//
	// A store may delete in several writes (each token is checked and
	// deleted atomically); on error it returns how many it deleted before.
	// Fewer than limit means it found no more to delete. A zero before or a
	// limit below one fails with ErrInvalid and changes nothing.
	PurgeTokens(ctx context.Context, before time.Time, limit int) (int, error)
}

// Park describes a wait; see WaitStore.Park.
type Park struct {
	Kind WaitKind
	// Now is the time of the write.
	Now time.Time
	// Until is the time of a WaitKindTime (required) or the timeout of a
	// WaitKindToken (optional); it must be zero for WaitKindChildren.
	Until time.Time
	// Key is the token of a WaitKindToken (required, at most 1024 bytes).
	Key string
	// Children are the children of a WaitKindChildren (at least one).
	Children []Trigger
}

// Validate reports whether p is a well-formed wait (an error wrapping
// ErrInvalid otherwise), children included. Stores call it first.
func (p *Park) Validate() error {
	if p.Now.IsZero() {
		return invalidf("park needs Now")
	}
	if err := checkTimes("park", p.Now, p.Until); err != nil {
		return err
	}
	switch p.Kind {
	case WaitKindTime:
		if p.Until.IsZero() {
			return invalidf("park: a time wait needs Until")
		}
	case WaitKindToken:
		if p.Key == "" || len(p.Key) > maxWaitKey {
			return invalidf("park: a token wait needs a token of 1 to %d bytes, got %d", maxWaitKey, len(p.Key))
		}
	case WaitKindChildren:
		if len(p.Children) == 0 {
			return invalidf("park: a children wait needs at least one child")
		}
		if !p.Until.IsZero() {
			return invalidf("park: a children wait has no timeout")
		}
		for i := range p.Children {
			if err := p.Children[i].Validate(); err != nil {
				return err
			}
		}
	default:
		return invalidf("park: unknown wait kind %d", p.Kind)
	}
	if p.Kind != WaitKindToken && p.Key != "" {
		return invalidf("park: only a token wait has a Key")
	}
	if p.Kind != WaitKindChildren && len(p.Children) > 0 {
		return invalidf("park: only a children wait has Children")
	}
	return nil
}

// MergePayload returns base with the top-level keys of extra set, as a
// resume merges its payload into the waiter's. Neither argument changes;
// the result is nil when both are empty.
func MergePayload(base, extra Payload) Payload {
	if len(base) == 0 && len(extra) == 0 {
		return nil
	}
	out := make(Payload, len(base)+len(extra))
	maps.Copy(out, base)
	maps.Copy(out, extra)
	return out
}

// waitStore returns the scheduler's store as a WaitStore, or an error
// naming what is missing.
func (s *Scheduler) waitStore(what string) (WaitStore, error) {
	ws, ok := s.store.(WaitStore)
	if !ok {
		return nil, invalidf("%s: the store %T does not support waits (it does not implement trigger.WaitStore)", what, s.store)
	}
	return ws, nil
}

// Resume delivers token with payload: the trigger waiting for it (after
// [WaitFor], or a MANUAL or EVENT trigger saved with the WaitKey) runs now
// with payload merged into its own. It is idempotent: a second resume of
// the token changes nothing and returns ResumeDuplicate. A resume that comes
// before the waiter parked is stored (ResumeStored) and ends the wait as
// soon as it starts; one that comes after the wait timed out returns
// ResumeTooLate. An empty or overlong token, or a payload that cannot be
// serialised, gets ErrInvalid and changes nothing. Resume may be called
// before Start (the trigger then runs once the scheduler starts).
//
// The store remembers a token for [Config.Retention] after its last change
// (the first resume, the waiter parking on it, the delivery) once no
// trigger waits for it; then the scheduler purges it
// ([WaitStore.PurgeTokens]). A token a trigger waits for is kept however
// long the wait. So idempotence, and the early resume, last Retention: a
// duplicate resume that arrives more than Retention after the token last
// changed is taken as new and stored (ResumeStored, not ResumeDuplicate or
// ResumeTooLate), and is purged in turn one Retention later; a stored resume
// whose waiter has not parked within Retention is dropped, and the waiter
// waits for another resume or its timeout. A negative Retention keeps
// tokens forever, as it keeps final triggers.
func (s *Scheduler) Resume(ctx context.Context, token string, payload Payload) (ResumeResult, error) {
	if token == "" || len(token) > maxWaitKey {
		return 0, invalidf("Resume: the token must be 1 to %d bytes, got %d", maxWaitKey, len(token))
	}
	if s.isStopped() {
		return 0, ErrStopped
	}
	ws, err := s.waitStore("Resume")
	if err != nil {
		return 0, err
	}
	res, id, err := ws.Resume(ctx, time.Now(), token, payload)
	if err != nil {
		return 0, fmt.Errorf("resume %q: %w", token, err)
	}
	if res == ResumeDelivered {
		yieldIf(s.armStored(ctx, id, true))
	}
	return res, nil
}

// Children returns the children of the last [WaitChildren] of the trigger
// parentID (the batch it waits for, or waited for last), ordered by ID,
// with their states and outcomes.
func (s *Scheduler) Children(ctx context.Context, parentID string) ([]Trigger, error) {
	if parentID == "" {
		return nil, invalidf("Children: empty id")
	}
	ws, err := s.waitStore("Children")
	if err != nil {
		return nil, err
	}
	return ws.Children(ctx, parentID)
}

// Checkpoint saves payload as the payload of the trigger run in ctx, fenced
// by the run's token, so that a run cut off by a crash (or its retry) starts
// from it: the consumer reads its progress from Trigger.Payload and goes on.
// It returns once the store has it (for a durable store: on disk), and sets
// the Payload of the trigger in ctx ([FromContext]) and of the *Trigger
// passed to the consumer. The run's outcome keeps it (a Reschedule with a
// payload replaces it), and so does a wait; like a resume's payload, it
// stays the trigger's payload for a CRON trigger's later occurrences. Outside
// a run it returns ErrInvalid; after the run lost its lease, ErrLeaseLost.
func Checkpoint(ctx context.Context, payload Payload) error {
	h, ok := ctx.Value(runKey{}).(*runContext)
	if !ok {
		return invalidf("Checkpoint: ctx does not come from a run (pass the context the Consumer got)")
	}
	ws, err := h.s.waitStore("Checkpoint")
	if err != nil {
		return err
	}
	if err := ws.Checkpoint(ctx, h.id, h.token, time.Now(), payload); err != nil {
		return fmt.Errorf("checkpoint %q: %w", h.id, err)
	}
	h.t.Payload = maps.Clone(payload)
	return nil
}

// runKey is the context key of the run itself (a *runContext).
type runKey struct{}

// prepareRun completes the context of a run of rc.t: the scheduler for
// Checkpoint and the result of the trigger's last wait (reading the
// children of a children wait from the store).
func (s *Scheduler) prepareRun(rc *runContext) error {
	rc.s = s
	t := &rc.t
	w := t.Wait
	if w.Kind == WaitKindNone {
		return nil
	}
	now := time.Now()
	r := &WaitResult{Kind: w.Kind, Until: w.Until, Outcome: WaitFired}
	switch w.Kind {
	case WaitKindTime:
		if !now.Before(w.Until) {
			r.Outcome = WaitResumed
		}
	case WaitKindToken:
		r.Token = t.WaitKey
		switch {
		case w.Resumed:
			r.Outcome = WaitResumed
		case !w.Until.IsZero() && !now.Before(w.Until):
			r.Outcome = WaitTimedOut
		}
	case WaitKindChildren:
		if w.Pending == 0 {
			r.Outcome = WaitResumed
		}
		if ws, ok := s.store.(WaitStore); ok {
			children, err := ws.Children(rc.Context, t.ID)
			if err != nil {
				return fmt.Errorf("reading the children of %q: %w", t.ID, err)
			}
			r.Children = children
		}
	}
	rc.wait = r
	return nil
}

// waitOf returns the wait that err asks for, nil when it asks for none, or
// ErrConcurrentWait when it asks for a wait and anything else.
func waitOf(err error) (*waitSpec, error) {
	if err == nil {
		return nil, nil // the common case, without the walk's allocations
	}
	var waits, directives int
	var w *waitSpec
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if d, ok := err.(*Directive); ok {
			directives++
			if d.wait != nil {
				waits++
				if w == nil {
					w = d.wait
				}
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	if waits > 0 && directives > 1 {
		return nil, fmt.Errorf("%w: the run returned %d directives, %d of them waits", ErrConcurrentWait, directives, waits)
	}
	return w, nil
}

// parkRun records the end of a run that asked for a wait, and reports
// whether it did (parked). A run that broke the one-wait rule, or asked for
// a wait that is refused as bad input, is not parked: err comes back as a
// Fail directive naming why, and the run ends with that outcome (for a
// CRON trigger: it moves on to its next occurrence, as after any failure).
// Otherwise err comes back unchanged.
func (s *Scheduler) parkRun(t *Trigger, err error) (parked bool, _ error) {
	w, werr := waitOf(err)
	if werr != nil {
		return false, Fail(werr)
	}
	if w == nil {
		return false, err
	}
	now := time.Now()
	p := Park{Kind: w.kind, Now: now}
	var bad error
	switch w.kind {
	case WaitKindTime:
		p.Until = w.at
		if p.Until.Before(now) {
			p.Until = now
		}
	case WaitKindToken:
		p.Key = w.key
		switch {
		case w.timeout < 0:
			bad = invalidf("WaitFor(%q, %v): negative timeout; use 0 to wait without one", w.key, w.timeout)
		case w.timeout > 0:
			p.Until = now.Add(w.timeout)
		}
	case WaitKindChildren:
		p.Children = make([]Trigger, len(w.children))
		for i, c := range w.children {
			prepare(&c, now)
			c.ParentID, c.Wait = "", Wait{}
			if c.InstanceID == "" {
				c.InstanceID = newID(now)
			}
			if c.ParentInstanceID == "" {
				c.ParentInstanceID = t.InstanceID
			}
			if err := s.prepareRecurring(&c, now); err != nil && bad == nil {
				bad = fmt.Errorf("child: %w", err)
			}
			p.Children[i] = c
		}
	}
	var ws WaitStore
	if bad == nil {
		bad = p.Validate()
	}
	if bad == nil {
		ws, bad = s.waitStore("wait")
	}
	if bad != nil {
		return false, Fail(errors.New("wait refused: " + bad.Error()))
	}
	due, perr := ws.Park(s.io, t.ID, t.Token, p)
	if errors.Is(perr, ErrInvalid) || errors.Is(perr, ErrDuplicate) {
		return false, Fail(errors.New("wait refused: " + perr.Error()))
	}
	kind := slog.String("wait", w.kind.String())
	switch {
	case errors.Is(perr, ErrLeaseLost), errors.Is(perr, ErrNotFound):
		s.logRun(t, slog.LevelWarn, "wait not recorded: the trigger was claimed again, canceled or deleted", kind, slog.Any("error", perr))
		return true, nil
	case perr != nil:
		s.logRun(t, slog.LevelError, "wait not recorded; the trigger runs again when its lease expires", kind, slog.Any("error", perr))
		return true, nil
	}
	s.logRun(t, slog.LevelDebug, "trigger parked", kind)
	s.armTrigger(t, due, true, p.Now) // resumed work goes ahead of new work
	for i := range p.Children {
		s.armTrigger(&p.Children[i], p.Children[i].DueAt, false, p.Now)
	}
	return true, nil
}

// armParent arms the parent of a child that just reached a final state, if
// that made the parent due: so it runs at once rather than at the next
// scan.
func (s *Scheduler) armParent(parentID string) {
	s.armStored(s.io, parentID, true)
}

// armStored reads trigger id from the store and arms it if it is due
// (boosted: a resumed trigger goes ahead of new work of its priority). It
// reports whether it woke a worker or the wheel driver (see yieldIf).
func (s *Scheduler) armStored(ctx context.Context, id string, boost bool) bool {
	s.mu.Lock()
	started := s.phase == phaseStarted
	s.mu.Unlock()
	if !started {
		return false // recovery at start finds it
	}
	t, err := s.store.Get(ctx, id)
	if err != nil || t.Paused || (t.State != StateScheduled && t.State != StateRetrying) {
		return false
	}
	return s.armTrigger(&t, t.DueAt, boost, time.Now())
}
