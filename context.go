package trigger

import (
	"context"
	"log/slog"
)

type contextKey struct{}

// NewContext returns a copy of ctx that carries t. The scheduler calls it
// for every run; tests of a Consumer may call it too.
func NewContext(ctx context.Context, t *Trigger) context.Context {
	return context.WithValue(ctx, contextKey{}, t)
}

// runContext is the context of a run: it carries the consumer's copy of the
// trigger, as NewContext does, in one allocation with the copy.
type runContext struct {
	context.Context
	t Trigger
}

func (c *runContext) Value(key any) any {
	if key == (contextKey{}) {
		return &c.t
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
