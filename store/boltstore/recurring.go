package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/triggerkit/trigger"
)

// Register implements trigger.Store: it saves t, or updates the stored
// trigger with its ID to t's definition (see trigger.Redefine), in one
// durable write.
func (s *Store) Register(ctx context.Context, now time.Time, t trigger.Trigger) (trigger.RegisterResult, error) {
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	recs, err := newRecords(now, []trigger.Trigger{t})
	if err != nil {
		return 0, err
	}
	nr := recs[0].rec
	var res trigger.RegisterResult
	err = s.write(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		res = 0
		old, err := w.get(t.ID)
		if err != nil {
			return err
		}
		if old == nil {
			if err := w.insert(recs); err != nil {
				return err
			}
			res = trigger.RegisterCreated
			return nil
		}
		cur := old.t
		l := w.s.leases[t.ID]
		if l != nil && l.endedTx == 0 {
			l.overlay(&cur)
		} else {
			l = nil
		}
		u, r := trigger.Redefine(cur, nr.t, bytes.Equal(old.payload, nr.payload), now)
		if r == trigger.RegisterUnchanged {
			res = r
			return nil
		}
		// In a wait, the payload is the run's (see trigger.Redefine).
		payload := func(r *record) []byte {
			if u.Wait.Kind != trigger.WaitKindNone {
				return r.payload
			}
			return nr.payload
		}
		next := &record{t: u, payload: payload(old), counted: old.counted, batch: old.batch}
		next.t.Payload = nil
		normalise(&next.t)
		if l != nil {
			// Running here: the record keeps what the claim wrote (or will
			// write), and the lease's copy of it, which its outcome is
			// built on, keeps the rest; only the definition changes.
			next = redefined(old, &u, payload(old), now)
			w.setRec(l, redefined(l.rec, &u, payload(l.rec), now))
			l.priority, l.updatedAt = u.Priority, now
		}
		if err := w.replace(old, next); err != nil {
			return err
		}
		w.mark(t.ID)
		res = r
		return nil
	})
	if err != nil {
		return 0, err
	}
	return res, nil
}

// Pause implements trigger.Store.
func (s *Store) Pause(ctx context.Context, id string, now time.Time) error {
	return s.update(ctx, id, invalidIf(now.IsZero(), "pause needs now"), func(w *writeTx, old *record, l *lease) error {
		if err := pausable(old, l); err != nil || old.t.Paused {
			return err
		}
		r := *old
		r.t.Paused, r.t.UpdatedAt = true, now
		if err := w.replace(old, &r); err != nil {
			return err
		}
		w.pauseLeased(l, true, now)
		w.mark(id)
		return nil
	})
}

// pauseLeased sets Paused in the lease's copy of the record, if the trigger
// is running: the run's outcome is built on that copy and must keep the
// flag (readers overlay the lease).
func (w *writeTx) pauseLeased(l *lease, paused bool, now time.Time) {
	if l == nil {
		return
	}
	p := *l.rec
	p.t.Paused = paused
	w.setRec(l, &p)
	l.updatedAt = now
}

// Unpause implements trigger.Store.
func (s *Store) Unpause(ctx context.Context, id string, now, at time.Time, ifCron *trigger.CronSpec) error {
	return s.update(ctx, id, invalidIf(now.IsZero(), "unpause needs now"), func(w *writeTx, old *record, l *lease) error {
		if err := pausable(old, l); err != nil {
			return err
		}
		if err := ifCron.Check(&old.t); err != nil {
			return err
		}
		if !old.t.Paused {
			return nil
		}
		r := *old
		r.t.Paused, r.t.UpdatedAt = false, now
		if st := r.t.State; l == nil && !at.IsZero() && (st == trigger.StateScheduled || st == trigger.StateRetrying) {
			r.t.State, r.t.DueAt, r.t.PlannedAt, r.t.Attempt = trigger.StateScheduled, at, at, 0
		}
		if err := w.replace(old, &r); err != nil {
			return err
		}
		w.pauseLeased(l, false, now)
		w.mark(id)
		return nil
	})
}

// redefined returns r with the definition of u (see trigger.Redefine) and
// payload, updated at now.
func redefined(r *record, u *trigger.Trigger, payload []byte, now time.Time) *record {
	d := *r
	t := &d.t
	t.Type, t.InstanceID, t.ParentInstanceID, t.NodeID, t.EdgeID = u.Type, u.InstanceID, u.ParentInstanceID, u.NodeID, u.EdgeID
	t.Priority, t.Queue, t.MaxAttempts, t.Cron, t.TimeZone, t.Misfire = u.Priority, u.Queue, u.MaxAttempts, u.Cron, u.TimeZone, u.Misfire
	t.Interval, t.MaxIterations, t.WaitKey, t.Machine, t.TraceContext = u.Interval, u.MaxIterations, u.WaitKey, u.Machine, u.TraceContext
	t.UpdatedAt = now.Round(0).UTC()
	d.payload = payload
	return &d
}

// setRec replaces the record a running trigger's lease keeps (see
// lease.rec), so that the run's outcome, built on it, keeps a change of its
// definition or pause; a failed commit puts the old one back. Callers hold
// s.mu.
func (w *writeTx) setRec(l *lease, r *record) {
	prev := l.rec
	l.rec = r
	w.onAbort = append(w.onAbort, func() {
		if l.rec == r {
			l.rec = prev
		}
	})
}

// pausable refuses a final trigger (one with a live lease is running).
func pausable(r *record, l *lease) error {
	if l == nil && r.t.State.Final() {
		return fmt.Errorf("%w: trigger %q is %s", trigger.ErrInvalidState, r.t.ID, r.t.State)
	}
	return nil
}
