package trigger

import (
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// Type says what kind of work a trigger stands for. The scheduler runs every
// type the same way; the type tells the consumer (and the recurring-trigger
// machinery) why the trigger exists.
type Type uint8

// The trigger types. The zero Type is read as TypeNext by [Scheduler.Schedule].
const (
	// TypeNext runs the next node of a workflow instance: the ordinary case.
	TypeNext Type = iota + 1
	// TypeRetry re-runs a node after a failure handled by the host itself.
	TypeRetry
	// TypeLoop re-runs the same node until the consumer says stop.
	TypeLoop
	// TypeTimer runs once at an absolute time or after a delay.
	TypeTimer
	// TypeCron runs at every occurrence of a recurring schedule.
	TypeCron
	// TypeManual has no due time of its own: it runs when fired by a person
	// ([Scheduler.Fire]). Until then it is [StateWaiting].
	TypeManual
	// TypeEvent has no due time of its own: it runs when an external event
	// fires it. Until then it is [StateWaiting].
	TypeEvent
)

var typeNames = [...]string{"", "NEXT", "RETRY", "LOOP", "TIMER", "CRON", "MANUAL", "EVENT"}

// Types lists every valid trigger type.
func Types() []Type {
	return []Type{TypeNext, TypeRetry, TypeLoop, TypeTimer, TypeCron, TypeManual, TypeEvent}
}

// String returns the upper-case name of the type, such as "CRON".
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Valid reports whether t is one of the defined types.
func (t Type) Valid() bool { return t >= TypeNext && t <= TypeEvent }

// ParseType returns the type named s ("NEXT", "CRON", ...).
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if i > 0 && n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown trigger type %q", ErrInvalid, s)
}

// waitsForever reports whether triggers of type t may be saved without a due
// time, in which case they wait until fired.
func (t Type) waitsForever() bool { return t == TypeManual || t == TypeEvent }

// State is where a trigger is in its life. The store owns it: callers never
// set it, the store sets it on every change. The package documentation has
// the state diagram.
//
// completed, failed and canceled are final: the trigger stays in the store
// until retention purges it (failed and canceled triggers can be sent back
// to scheduled with [Scheduler.Retry]).
type State uint8

// The trigger states.
const (
	// StateScheduled: waiting for its due time, then claimable.
	StateScheduled State = iota + 1
	// StateRunning: claimed by an owner under a lease; a consumer runs it.
	// When the lease expires without being extended the trigger is
	// claimable again.
	StateRunning
	// StateRetrying: a run failed and another attempt is due at DueAt.
	StateRetrying
	// StateWaiting: no due time; runs only when fired or resumed.
	StateWaiting
	// StateCompleted: final; the consumer succeeded.
	StateCompleted
	// StateFailed: final; the consumer failed and no attempt is left (the
	// dead letter). LastError says why.
	StateFailed
	// StateCanceled: final; canceled by a caller.
	StateCanceled
)

var stateNames = [...]string{"", "scheduled", "running", "retrying", "waiting", "completed", "failed", "canceled"}

// States lists every state.
func States() []State {
	return []State{StateScheduled, StateRunning, StateRetrying, StateWaiting, StateCompleted, StateFailed, StateCanceled}
}

// String returns the lower-case name of the state, such as "running".
func (s State) String() string {
	if s.Valid() {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return s >= StateScheduled && s <= StateCanceled }

// Final reports whether s is completed, failed or canceled: nothing runs a
// trigger in a final state.
func (s State) Final() bool { return s == StateCompleted || s == StateFailed || s == StateCanceled }

// MisfirePolicy says what a CRON trigger does with occurrences missed while
// no scheduler was running (or while a run took longer than the interval).
// An occurrence is missed when it is claimed more than Config.MisfireGrace
// after its due time.
type MisfirePolicy uint8

// The misfire policies. The zero value means "the scheduler's default".
const (
	// MisfireDefault uses the scheduler-wide default.
	MisfireDefault MisfirePolicy = iota
	// MisfireFireOnce fires one catch-up run now for all missed
	// occurrences, then goes on with the first occurrence after that run
	// started.
	MisfireFireOnce
	// MisfireSkip skips missed occurrences without running them and waits
	// for the next one.
	MisfireSkip
	// MisfireFireAll fires the missed occurrences one after another, each
	// standing for its own scheduled time, but at most Config.MisfireCap of
	// them: when more were missed, the oldest are skipped.
	MisfireFireAll
)

// Valid reports whether p is one of the defined policies.
func (p MisfirePolicy) Valid() bool { return p <= MisfireFireAll }

var misfireNames = [...]string{"default", "fire-once", "skip", "fire-all"}

// String returns the name of the policy, such as "fire-once".
func (p MisfirePolicy) String() string {
	if p.Valid() {
		return misfireNames[p]
	}
	return fmt.Sprintf("MisfirePolicy(%d)", uint8(p))
}

// Payload is the data a trigger carries. It must be JSON-serialisable: every
// store keeps it as JSON, so a value read back has JSON's types (numbers are
// float64, structs are maps).
type Payload map[string]any

// Priority bounds. Higher runs first.
const (
	MinPriority = -1 << 15
	MaxPriority = 1<<15 - 1
)

// Trigger is one unit of work: "run node NodeID of instance InstanceID at
// DueAt with Payload". Triggers are values: the store and the scheduler hand
// out copies, and changing a copy changes nothing stored.
type Trigger struct {
	// ID identifies the trigger. Empty means the scheduler generates a UUID;
	// a caller-supplied ID makes scheduling idempotent (a second Schedule of
	// the same ID fails with ErrDuplicate and changes nothing).
	ID string
	// Type of the trigger. Zero is read as TypeNext.
	Type Type
	// State is set by the store; it is ignored when scheduling.
	State State

	// InstanceID is the workflow (chain-state) instance the trigger belongs to.
	InstanceID string
	// ParentInstanceID is the parent workflow instance, for sub-flows.
	ParentInstanceID string
	// NodeID is the node to run; empty means the whole chain.
	NodeID string
	// EdgeID is the edge that led here, for conditional branches.
	EdgeID string

	// DueAt is when the trigger should run. It may be zero only for
	// TypeManual and TypeEvent triggers, which then wait until fired. A time
	// in the past means "now".
	DueAt time.Time
	// Payload is the trigger's data; nil is an empty payload.
	Payload Payload
	// Priority orders triggers that are due together: higher runs first.
	// Between MinPriority and MaxPriority; zero is the default.
	Priority int
	// Queue names the queue the trigger belongs to; empty is the default queue.
	Queue string

	// Attempt counts the runs started so far. It is 1 during the first run.
	Attempt int
	// MaxAttempts is how many runs may be started before the trigger fails
	// for good. Zero means the scheduler's default.
	MaxAttempts int
	// Iteration counts the runs of a LOOP trigger that completed, and the
	// occurrences a CRON trigger has moved past (run, failed for good, or
	// skipped as misfires). It is 0 during the first run.
	Iteration int

	// Delay, when DueAt is zero, makes Scheduler.Schedule (and a follow-up
	// passed to Complete) due Delay after now: a TIMER "in ten minutes". It
	// is input only: stores keep DueAt, ignore Delay and return it as zero.
	Delay time.Duration
	// PlannedAt is when the trigger's current run was planned: the due time
	// it was saved with, rescheduled to (the next occurrence of a CRON
	// trigger, the next iteration of a LOOP) or requeued at. Retry and
	// Snooze outcomes move DueAt but keep PlannedAt, so during the retries
	// of a CRON occurrence it still names the occurrence. Set by the store;
	// ignored when saving.
	PlannedAt time.Time

	// Cron is the recurring schedule of a CRON trigger: a cron expression
	// with five fields ("0 3 * * *") or six (a leading seconds field), a
	// descriptor ("@daily", "@hourly", "@every 90s"), or "@name" for a
	// schedule named in Config.Schedules. A "CRON_TZ=<zone> " prefix sets
	// TimeZone. See the package documentation for daylight-saving time.
	Cron string
	// TimeZone is the IANA time zone the Cron spec is read in, such as
	// "America/New_York"; empty is UTC.
	TimeZone string
	// Misfire says what a CRON trigger does with occurrences missed while no
	// scheduler ran it; zero means Config.Misfire.
	Misfire MisfirePolicy
	// Interval is the pause between the runs of a LOOP trigger: each
	// iteration is due Interval after the previous one finished. It must be
	// at least Config.Tick.
	Interval time.Duration
	// MaxIterations, when positive, ends a LOOP trigger after that many
	// completed runs. Zero runs until the consumer stops it.
	MaxIterations int
	// Paused is set on a trigger paused with Scheduler.Pause: it is not
	// claimed when due (Fire still runs it) until Scheduler.Unpause. A run in
	// progress when it is paused finishes. Set by the store; ignored when
	// saving.
	Paused bool

	// WaitKey is the token or event key a waiting trigger waits for: a MANUAL
	// or EVENT trigger saved without a due time and with a WaitKey runs when
	// [Scheduler.Resume] delivers the key (or when fired). The store also
	// sets it on a trigger parked by [WaitFor]. At most 1024 bytes.
	WaitKey string
	// ParentID is the trigger that waits for this one as one of its
	// children ([WaitChildren]). The store owns it: it is ignored when
	// scheduling.
	ParentID string
	// Wait describes the wait the trigger is parked in, or the last one it
	// came out of. The store owns it: it is ignored when scheduling. A
	// consumer reads the outcome of its wait with [WaitResultFrom].
	Wait Wait
	// Machine is a resource preset for container consumers, such as "small-1x".
	Machine string

	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
	// LastError is the error of the last failed run.
	LastError string
	// TraceContext carries the W3C trace context of the span that scheduled
	// the trigger, so its execution span can link to it.
	TraceContext map[string]string

	// Owner, LeaseUntil and Token describe the current claim; they are set by
	// the store while the trigger is running. Token grows on every claim and
	// fences every later write of the run.
	Owner      string
	LeaseUntil time.Time
	Token      uint64
	// Recovered is set on a trigger returned by a claim that took over an
	// expired lease: a previous run crashed, stalled or was cut off.
	Recovered bool
}

// sameTrigger reports whether a and b are the same copy of a trigger: every
// field equal, and the same maps (a map changed in place is changed in
// both). TestSameTriggerSeesEveryField keeps it complete.
func sameTrigger(a, b *Trigger) bool {
	return a.ID == b.ID && a.Type == b.Type && a.State == b.State &&
		a.InstanceID == b.InstanceID && a.ParentInstanceID == b.ParentInstanceID &&
		a.NodeID == b.NodeID && a.EdgeID == b.EdgeID &&
		a.DueAt == b.DueAt && sameMap(a.Payload, b.Payload) && a.Priority == b.Priority && a.Queue == b.Queue &&
		a.Attempt == b.Attempt && a.MaxAttempts == b.MaxAttempts && a.Iteration == b.Iteration &&
		a.Delay == b.Delay && a.PlannedAt == b.PlannedAt &&
		a.Cron == b.Cron && a.TimeZone == b.TimeZone && a.Misfire == b.Misfire &&
		a.Interval == b.Interval && a.MaxIterations == b.MaxIterations && a.Paused == b.Paused &&
		a.WaitKey == b.WaitKey && a.ParentID == b.ParentID && a.Wait == b.Wait && a.Machine == b.Machine &&
		a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt && a.LastError == b.LastError &&
		sameMap(a.TraceContext, b.TraceContext) &&
		a.Owner == b.Owner && a.LeaseUntil == b.LeaseUntil && a.Token == b.Token && a.Recovered == b.Recovered
}

// sameMap reports whether a and b are the same map (or both nil).
func sameMap[M ~map[string]V, V any](a, b M) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Due times must lie in [minDue, maxDue): every store can then keep them as
// int64 nanoseconds since 1970.
var (
	minDue = time.Unix(0, 0)
	maxDue = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
	// maxDueUnix is maxDue in Unix seconds.
	maxDueUnix = maxDue.Unix()
)

// dueInRange reports whether t lies in [minDue, maxDue). Both bounds are
// whole seconds, so t.Unix(), which rounds down, decides: one reading of t,
// where Before takes t apart again for each bound (a claim and its outcome
// checked a dozen times, 300 instructions of a run).
func dueInRange(t time.Time) bool {
	s := t.Unix()
	return s >= 0 && s < maxDueUnix
}

// Validate reports whether t can be saved, with an error wrapping ErrInvalid
// that names the bad field. It does not check the payload: stores report a
// payload that cannot be serialised when they encode it.
func (t *Trigger) Validate() error {
	switch {
	case t.ID == "":
		return invalidf("trigger has an empty ID")
	case len(t.ID) > 255:
		return invalidf("trigger ID is %d bytes long; at most 255 are allowed", len(t.ID))
	case !t.Type.Valid():
		return invalidf("trigger %q: unknown type %d", t.ID, uint8(t.Type))
	case t.Delay < 0:
		return invalidf("trigger %q: negative Delay %v", t.ID, t.Delay)
	case t.DueAt.IsZero() && !t.Type.waitsForever():
		return invalidf("trigger %q: type %s needs a due time (only MANUAL and EVENT triggers may wait without one)", t.ID, t.Type)
	case !t.DueAt.IsZero() && !dueInRange(t.DueAt):
		return invalidf("trigger %q: due time %v is outside [%v, %v)", t.ID, t.DueAt, minDue, maxDue)
	case t.Priority < MinPriority || t.Priority > MaxPriority:
		return invalidf("trigger %q: priority %d is outside [%d, %d]", t.ID, t.Priority, MinPriority, MaxPriority)
	case t.Attempt < 0:
		return invalidf("trigger %q: negative attempt %d", t.ID, t.Attempt)
	case t.MaxAttempts < 0:
		return invalidf("trigger %q: negative MaxAttempts %d", t.ID, t.MaxAttempts)
	case t.Iteration < 0:
		return invalidf("trigger %q: negative iteration %d", t.ID, t.Iteration)
	case !t.Misfire.Valid():
		return invalidf("trigger %q: unknown misfire policy %d", t.ID, t.Misfire)
	case t.Interval < 0:
		return invalidf("trigger %q: negative Interval %v", t.ID, t.Interval)
	case t.MaxIterations < 0:
		return invalidf("trigger %q: negative MaxIterations %d", t.ID, t.MaxIterations)
	case len(t.WaitKey) > maxWaitKey:
		return invalidf("trigger %q: WaitKey is %d bytes long; at most %d are allowed", t.ID, len(t.WaitKey), maxWaitKey)
	}
	return nil
}

// InitialState is the state a store gives t when it is saved: waiting for a
// MANUAL or EVENT trigger without a due time, scheduled otherwise.
func (t *Trigger) InitialState() State {
	if t.DueAt.IsZero() {
		return StateWaiting
	}
	return StateScheduled
}

// LogAttrs returns the trigger's identity as slog attributes with the
// library's keys: trigger_id, trigger_type, node_id, attempt.
func (t *Trigger) LogAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("trigger_id", t.ID),
		slog.String("trigger_type", t.Type.String()),
		slog.String("node_id", t.NodeID),
		slog.Int("attempt", t.Attempt),
	}
}
