package trigger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Consumer runs triggers. The host implements it: a chain executor, a
// container runner, anything.
//
// Consume is called on a worker of the scheduler's pool with the claimed
// trigger; the context carries the trigger ([FromContext]) and is canceled
// when the run must stop (the lease was lost, the trigger was canceled, or
// the scheduler is stopping and its Stop context expired). Consume must be
// safe for concurrent use: workers call it in parallel.
//
// Delivery is at least once: a run cut off by a crash runs again (with
// Trigger.Recovered set), so consumers must be idempotent.
//
// The returned error decides what happens next:
//
//   - nil: the trigger is completed.
//   - [Complete](next...): completed, and next are scheduled in the same
//     atomic store write.
//   - [RetryAfter](d, err): the run failed; retry after d (if attempts are
//     left).
//   - [Fail](err): the run failed for good; no retry.
//   - [Snooze](d): run again after d without using an attempt.
//   - [Reschedule](at, payload): a checkpoint; run again at at with a new
//     payload, as a fresh run (attempts start over).
//   - [WaitUntil](at), [WaitFor](token, timeout), [WaitChildren](children...):
//     park the trigger, holding no worker, until a time, a token delivered
//     by [Scheduler.Resume], or the end of its children; then it runs again
//     and [WaitResultFrom] says how the wait ended. See [WaitStore].
//   - any other error: the run failed; it is retried with exponential
//     backoff until MaxAttempts runs have failed, then the trigger is failed
//     and kept in the store with its last error.
//
// For a CRON trigger, nil and Complete(next...) move on to the next
// occurrence (in the same store write as the follow-ups), and a failure with
// no attempt left (or Fail) moves on too, with the error kept as LastError;
// Cancel the trigger to stop it. For a LOOP trigger, nil runs the next
// iteration Interval later (until MaxIterations), and Complete(next...)
// ends the loop.
//
// t is the consumer's own copy: Consume may change it while it runs, and
// the scheduler goes on from the trigger as claimed. Once Consume has
// returned, t may be read (by a goroutine it started, say) but not
// changed: the scheduler may still read it.
//
// A panic in Consume is recovered and becomes the run's error, with its
// stack; it never kills a worker.
type Consumer interface {
	Consume(ctx context.Context, t *Trigger) error
}

// ConsumerFunc adapts a function to a Consumer.
type ConsumerFunc func(ctx context.Context, t *Trigger) error

// Consume calls f(ctx, t).
func (f ConsumerFunc) Consume(ctx context.Context, t *Trigger) error { return f(ctx, t) }

// Directive is an error value a Consumer returns to choose what happens to
// its trigger; it is made by Complete, RetryAfter, Fail, Snooze,
// Reschedule, WaitUntil, WaitFor and WaitChildren. A run returns at most one
// wait directive, and a wait with no other directive (see
// ErrConcurrentWait). Only Fail and RetryAfter describe a failure; the others travel
// on the error path only because Consume has one result.
type Directive struct {
	kind    OutcomeKind
	delay   time.Duration
	at      time.Time
	err     error
	payload Payload
	next    []Trigger
	wait    *waitSpec // a wait directive (kind is zero)
}

// Error describes the directive.
func (d *Directive) Error() string {
	if d.wait != nil {
		return fmt.Sprintf("trigger: wait for %s", d.wait.kind)
	}
	switch d.kind {
	case OutcomeComplete:
		return fmt.Sprintf("trigger: complete with %d follow-ups", len(d.next))
	case OutcomeRetry:
		return fmt.Sprintf("trigger: retry after %v: %v", d.delay, d.err)
	case OutcomeFail:
		return fmt.Sprintf("trigger: fail: %v", d.err)
	case OutcomeSnooze:
		return fmt.Sprintf("trigger: snooze for %v", d.delay)
	case OutcomeReschedule:
		return fmt.Sprintf("trigger: reschedule at %v", d.at)
	}
	return "trigger: unknown directive"
}

// Unwrap returns the failure wrapped by Fail or RetryAfter.
func (d *Directive) Unwrap() error { return d.err }

// Complete completes the trigger and schedules next in the same atomic store
// write: either the completion and every follow-up are stored, or none. A
// follow-up's empty ID, zero Type, zero DueAt (for types that need one) and
// InstanceID default as in Scheduler.Schedule, with InstanceID taken from the
// completed trigger.
func Complete(next ...Trigger) error {
	return &Directive{kind: OutcomeComplete, next: next}
}

// RetryAfter fails the run with err and asks for the next attempt after d,
// instead of the retry policy's backoff. When no attempt is left the trigger
// fails for good.
func RetryAfter(d time.Duration, err error) error {
	return &Directive{kind: OutcomeRetry, delay: d, err: orUnknown(err)}
}

// Fail fails the run with err and the trigger for good: it becomes failed
// without another attempt and keeps err as its last error.
func Fail(err error) error {
	return &Directive{kind: OutcomeFail, err: orUnknown(err)}
}

// Snooze gives the trigger back to run again after d, without using an
// attempt.
func Snooze(d time.Duration) error {
	return &Directive{kind: OutcomeSnooze, delay: d}
}

// Reschedule ends the run successfully and schedules the same trigger again
// at at with payload (nil keeps the current payload): a checkpoint, or the
// next run of a loop. Attempts start over and Iteration grows by one.
func Reschedule(at time.Time, payload Payload) error {
	return &Directive{kind: OutcomeReschedule, at: at, payload: payload}
}

func orUnknown(err error) error {
	if err == nil {
		return errors.New("unspecified error")
	}
	return err
}

// PanicError is the error of a run whose consumer panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("consumer panicked: %v\n%s", e.Value, e.Stack)
}
