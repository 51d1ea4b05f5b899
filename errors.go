package trigger

import (
	"errors"
	"fmt"
)

// Errors returned by stores. Every store returns them (wrapped, with detail)
// so callers check them with errors.Is; the conformance suite in
// store/storetest holds every store to them.
var (
	// ErrNotFound is returned when no trigger has the given ID.
	ErrNotFound = errors.New("trigger: not found")
	// ErrDuplicate is returned when a trigger is saved with an ID that is
	// already stored (or appears twice in one batch).
	ErrDuplicate = errors.New("trigger: duplicate id")
	// ErrClaimed is returned by a claim when another run holds an unexpired
	// lease on the trigger.
	ErrClaimed = errors.New("trigger: claimed by a live lease")
	// ErrNotDue is returned by a claim that is not forced when the trigger's
	// due time has not come, or when it waits to be fired.
	ErrNotDue = errors.New("trigger: not due")
	// ErrInvalidState is returned when the trigger's state does not allow
	// the operation, such as claiming a completed trigger.
	ErrInvalidState = errors.New("trigger: operation not allowed in this state")
	// ErrLeaseLost is returned by Extend and Finish when the caller's token
	// is stale: the trigger was claimed again, canceled, deleted or is no
	// longer running. Nothing is changed.
	ErrLeaseLost = errors.New("trigger: lease lost (stale fencing token)")
	// ErrConflict is returned by a write made conditional on what the
	// caller read (Outcome.IfCron, Store.Unpause) when the trigger changed
	// meanwhile: its recurring schedule was registered anew. Nothing is
	// changed; read the trigger again and retry.
	ErrConflict = errors.New("trigger: changed since read")
	// ErrInvalid is returned for bad input: an empty ID, an unknown type, a
	// payload that cannot be serialised, a bad argument.
	ErrInvalid = errors.New("trigger: invalid input")
)

// Errors returned by the scheduler.
var (
	// ErrStopped is returned by a Scheduler's methods after Stop.
	ErrStopped = errors.New("trigger: scheduler stopped")
	// ErrNotStarted is returned by Fire before Start: nothing would run the
	// claimed trigger.
	ErrNotStarted = errors.New("trigger: scheduler not started")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
