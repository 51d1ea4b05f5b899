package trigger

import (
	"context"
	"log/slog"
	"time"
)

type contextKey struct{}

type occurrenceKey struct{}

// Occurrence describes the occurrence of a CRON trigger that a run stands
// for; see OccurrenceFromContext.
type Occurrence struct {
	// Scheduled is when the occurrence was due (Trigger.PlannedAt): the time
	// a nightly report is about, however late it runs.
	Scheduled time.Time
	// CatchUp is set on a misfire: the run started more than
	// Config.MisfireGrace after it was due, because no scheduler ran it in
	// time (downtime, or the previous run overran). Under MisfireFireOnce
	// the run stands for every occurrence missed until it started; under
	// MisfireFireAll it is one of several catch-up runs, each for its own
	// Scheduled time.
	CatchUp bool
}

// OccurrenceFromContext returns the occurrence a run of a CRON trigger
// stands for. ok is false outside the run of a CRON trigger, and for a run
// started by Fire before its due time (which stands for no occurrence).
func OccurrenceFromContext(ctx context.Context) (o Occurrence, ok bool) {
	p, ok := ctx.Value(occurrenceKey{}).(*Occurrence)
	if !ok {
		return Occurrence{}, false
	}
	return *p, true
}

// NewContext returns a copy of ctx that carries t. The scheduler calls it
// for every run; tests of a Consumer may call it too.
func NewContext(ctx context.Context, t *Trigger) context.Context {
	return context.WithValue(ctx, contextKey{}, t)
}

// runContext is the context of a run: it carries the consumer's copy of the
// trigger, as NewContext does, in one allocation with the copy.
type runContext struct {
	context.Context
	t     Trigger // the consumer's copy
	id    string  // the claimed ID and fencing token, for Checkpoint
	token uint64
	// occ is the occurrence a run of a CRON trigger stands for, or nil. It
	// points into the run's occurrence, which nothing changes once the run
	// starts: held by value, it made every run's context 32 bytes larger,
	// and one size class (64 bytes) more to allocate.
	occ  *Occurrence
	s    *Scheduler  // for Checkpoint
	wait *WaitResult // how the trigger's last wait ended; nil if it never waited
}

func (c *runContext) Value(key any) any {
	switch key {
	case contextKey{}:
		return &c.t
	case occurrenceKey{}:
		if c.occ != nil {
			return c.occ
		}
		return nil // not a nil *Occurrence
	case runKey{}:
		return c
	}
	return c.Context.Value(key)
}

// FromContext returns the trigger being run, as passed to the Consumer,
// with its Attempt, Token (the fencing token of this run, to pass on to
// systems that can reject stale writers) and Recovered flag. ok is false
// when ctx does not come from a run.
func FromContext(ctx context.Context) (t Trigger, ok bool) {
	p, ok := ctx.Value(contextKey{}).(*Trigger)
	if !ok {
		return Trigger{}, false
	}
	return *p, true
}

// LogAttrs returns the slog attributes of the trigger run in ctx
// (trigger_id, trigger_type, node_id, attempt), or nil outside a run:
//
//	logger.LogAttrs(ctx, slog.LevelInfo, "sent mail", trigger.LogAttrs(ctx)...)
func LogAttrs(ctx context.Context) []slog.Attr {
	p, ok := ctx.Value(contextKey{}).(*Trigger)
	if !ok {
		return nil
	}
	return p.LogAttrs()
}
