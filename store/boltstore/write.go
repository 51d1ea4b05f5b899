package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/triggerkit/trigger"
)

// The durable writes: each returns once its transaction is committed and
// synced (see write in commit.go).

// Save implements trigger.Store.
func (s *Store) Save(ctx context.Context, now time.Time, t trigger.Trigger) error {
	return s.SaveBatch(ctx, now, []trigger.Trigger{t})
}

// SaveBatch implements trigger.Store.
func (s *Store) SaveBatch(ctx context.Context, now time.Time, ts []trigger.Trigger) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	recs, err := newRecords(now, ts)
	if err != nil || len(recs) == 0 {
		return err
	}
	return s.write(ctx, func(w *writeTx) error { return w.insert(recs) })
}

// newRecords validates ts (no two with one ID) and returns them as the
// records Save stores, encoded here rather than in the committer.
func newRecords(now time.Time, ts []trigger.Trigger) ([]change, error) {
	if err := invalidIf(now.IsZero() && len(ts) > 0, "save needs now"); err != nil {
		return nil, err
	}
	recs := make([]change, len(ts))
	var seen map[string]struct{}
	if len(ts) > 1 {
		seen = make(map[string]struct{}, len(ts))
	}
	for i := range ts {
		t := ts[i]
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if seen != nil {
			if _, dup := seen[t.ID]; dup {
				return nil, fmt.Errorf("%w: trigger %q appears twice in one batch", trigger.ErrDuplicate, t.ID)
			}
			seen[t.ID] = struct{}{}
		}
		payload, err := marshalPayload(t.ID, t.Payload)
		if err != nil {
			return nil, err
		}
		t.Payload = nil
		t.State = t.InitialState()
		if t.CreatedAt.IsZero() {
			t.CreatedAt = now
		}
		t.UpdatedAt = now
		t.Owner, t.LeaseUntil, t.Token, t.Recovered = "", time.Time{}, 0, false
		t.PlannedAt, t.Paused, t.Delay = t.DueAt, false, 0
		t.ParentID, t.Wait = "", trigger.Wait{}
		if len(t.TraceContext) > 0 {
			t.TraceContext = maps.Clone(t.TraceContext)
		}
		normalise(&t)
		r := &record{t: t, payload: payload}
		if recs[i], err = newChange(r); err != nil {
			return nil, err
		}
		recs[i].rec = r
	}
	return recs, nil
}

// Finish implements trigger.Store.
//
// Everything but the checks and the writes happens before the write is
// queued, outside the commit: the record is the one Claim read (kept with
// the lease; while the lease lasts only its lease fields can change on
// disk, and the outcome overwrites those, but for the writes that update
// the lease's copy too: see lease.rec), so it is neither read nor decoded
// again, and its encoding and index keys are ready. The committer
// checks that the lease is still current, reads the index keys of the
// stored record (which the claim's own record may have moved) and writes.
func (s *Store) Finish(ctx context.Context, id string, token uint64, o trigger.Outcome) error {
	op, l, err := s.queueFinish(ctx, id, token, o)
	if op != nil {
		err = op.wait(ctx)
	}
	if l != nil {
		s.finishDone(l, err)
	}
	return err
}

// queueFinish queues the write of Finish and returns it with the lease it
// ends; Finish waits for it, then calls finishDone. With a nil op, err is
// the outcome (and finishDone is still due when the lease is not nil).
func (s *Store) queueFinish(ctx context.Context, id string, token uint64, o trigger.Outcome) (*op, *lease, error) {
	if err := s.ready(ctx, o.Validate(), checkID(id)); err != nil {
		return nil, nil, err
	}
	var payload []byte
	if o.Kind == trigger.OutcomeReschedule {
		var err error
		if payload, err = marshalPayload(id, o.Payload); err != nil {
			return nil, nil, err
		}
	}
	followUps, err := newRecords(o.Now, o.FollowUps)
	if err != nil {
		return nil, nil, err
	}
	l, base := s.finishing(id, token) // base: l.rec, which Register, Pause, Unpause and Checkpoint change under s.mu
	if l == nil {
		// No lease of this process has the token: it ended (or was taken
		// over) for good, no write can bring it back.
		return nil, nil, s.leaseLost(id, token)
	}
	r := finished(l, base, o, payload)
	count := r.counted && !base.counted // a child's end, to count in its parent's wait
	c, err := newChange(&r)
	if err != nil {
		return nil, l, err
	}
	op, err := s.queueWrite(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		if w.s.leases[id] != l || l.endedTx != 0 {
			if w.lookup(c.key) == nil {
				return fmt.Errorf("%w: %w: trigger %q", trigger.ErrLeaseLost, trigger.ErrNotFound, id)
			}
			return fmt.Errorf("%w: token %d is not the current claim of trigger %q", trigger.ErrLeaseLost, token, id)
		}
		if err := o.IfCron.Check(&l.rec.t); err != nil {
			return err
		}
		if l.rec != base {
			// Register, Pause or a Checkpoint changed the trigger
			// since: build the outcome on the record as it is now.
			r := finished(l, l.rec, o, payload)
			var err error
			if c, err = newChange(&r); err != nil {
				return err
			}
			count = r.counted && !l.rec.counted
		}
		if err := w.rewriteLeased(c, id, followUps); err != nil {
			return err
		}
		if count {
			w.countChild(base, o.Now)
		}
		w.endLease(l, true)
		return nil
	})
	return op, l, err
}

// finished returns the record of l's trigger, rec, after outcome o (payload
// is o.Payload as JSON, for a reschedule).
func finished(l *lease, rec *record, o trigger.Outcome, payload []byte) record {
	r := *rec
	t := &r.t
	t.Token, t.Attempt = l.token, l.attempt
	t.Owner, t.LeaseUntil, t.Recovered, t.UpdatedAt = "", time.Time{}, false, o.Now
	switch o.Kind {
	case trigger.OutcomeComplete:
		t.State = trigger.StateCompleted
	case trigger.OutcomeRetry:
		t.State, t.DueAt, t.LastError = trigger.StateRetrying, o.At, o.Error
	case trigger.OutcomeFail:
		t.State, t.LastError = trigger.StateFailed, o.Error
	case trigger.OutcomeReschedule:
		t.State, t.DueAt, t.PlannedAt, t.Attempt = trigger.StateScheduled, o.At, o.At, 0
		t.Iteration++
		t.Wait = trigger.Wait{}
		if payload != nil {
			r.payload = payload
		}
		if o.Error != "" {
			t.LastError = o.Error
		}
	case trigger.OutcomeSnooze:
		t.State, t.DueAt = trigger.StateScheduled, o.At
		t.Attempt = max(t.Attempt-1, 0)
	}
	if t.State.Final() && t.ParentID != "" {
		r.counted = true // see countChild
	}
	return r
}

// rewriteLeased writes c, the new record of the leased trigger id, over the
// stored one, together with the new records news (follow-ups, children). A
// record gone from the file means the lease is lost.
func (w *writeTx) rewriteLeased(c change, id string, news []change) error {
	from, err := w.storedKeys(c.key, id)
	if err != nil {
		if errors.Is(err, trigger.ErrNotFound) {
			err = fmt.Errorf("%w: %w", trigger.ErrLeaseLost, err)
		}
		return err
	}
	c.from = from
	return w.insert(news, c)
}

// storedKeys returns the index keys of the record stored under key (id),
// which must exist, without decoding more of it than the keys need. The
// keys are valid until the next call: they are for Delete, which does not
// keep them.
func (w *writeTx) storedKeys(key []byte, id string) (indexSet, error) {
	v := w.lookup(key)
	if v == nil {
		return indexSet{}, fmt.Errorf("%w: trigger %q", trigger.ErrNotFound, id)
	}
	r, err := checkRecord(id, v)
	if err != nil {
		return indexSet{}, corrupt(id, err)
	}
	var k indexSet
	w.scratch, k = appendKeys(w.scratch[:0], &r.t)
	return k, nil
}

// insert applies cs and stores the new records, or does nothing if one of
// the new IDs exists or one of their wait keys is taken. The new records'
// wait keys are bound (see bindNew) and the children among them indexed.
func (w *writeTx) insert(news []change, cs ...change) error {
	for _, c := range news {
		if w.lookup(c.key) != nil {
			return fmt.Errorf("%w: trigger %q exists", trigger.ErrDuplicate, c.id)
		}
	}
	if err := w.checkKeys(news); err != nil {
		return err
	}
	news, binds, err := bindNew(w, news)
	if err != nil {
		return err
	}
	w.apply(cs...)
	w.apply(news...)
	for _, c := range news {
		w.fresh = append(w.fresh, freshNote{id: c.id, rec: c.rec})
	}
	binds.write(w)
	return nil
}

// Cancel implements trigger.Store.
func (s *Store) Cancel(ctx context.Context, id string, now time.Time) error {
	return s.update(ctx, id, invalidIf(now.IsZero(), "cancel needs now"), func(w *writeTx, old *record, l *lease) error {
		state := old.t.State
		if l != nil {
			state = trigger.StateRunning
		}
		switch state {
		case trigger.StateCanceled:
			return nil
		case trigger.StateCompleted, trigger.StateFailed:
			return fmt.Errorf("%w: trigger %q is %s", trigger.ErrInvalidState, id, state)
		}
		r := *old
		if l != nil {
			l.overlay(&r.t) // keep the attempt of the run being canceled
		}
		r.t.State, r.t.UpdatedAt = trigger.StateCanceled, now
		r.t.Owner, r.t.LeaseUntil, r.t.Recovered = "", time.Time{}, false
		count := countable(&r)
		if err := w.replace(old, &r); err != nil {
			return err
		}
		if count {
			w.countChild(&r, now)
		}
		if l != nil {
			w.endLease(l, false)
		} else {
			w.mark(id)
		}
		return nil
	})
}

// Requeue implements trigger.Store.
func (s *Store) Requeue(ctx context.Context, id string, now, at time.Time) error {
	return s.update(ctx, id, invalidIf(now.IsZero() || at.IsZero(), "requeue needs now and a due time"), func(w *writeTx, old *record, l *lease) error {
		// A live lease implies a state other than failed or canceled.
		if st := old.t.State; l != nil || (st != trigger.StateFailed && st != trigger.StateCanceled) {
			return fmt.Errorf("%w: trigger %q is %s; only failed and canceled triggers can be requeued", trigger.ErrInvalidState, id, st)
		}
		r := *old
		r.t.State, r.t.DueAt, r.t.PlannedAt, r.t.Attempt, r.t.UpdatedAt = trigger.StateScheduled, at, at, 0, now
		return w.replace(old, &r)
	})
}

// update runs fn on the stored record of id and its live lease (nil if it
// has none), under s.mu, in the commit group; check is the caller's
// argument check.
func (s *Store) update(ctx context.Context, id string, check error, fn func(w *writeTx, old *record, l *lease) error) error {
	if err := s.ready(ctx, checkID(id), check); err != nil {
		return err
	}
	return s.write(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		old, err := w.get(id)
		if err != nil {
			return err
		}
		if old == nil {
			return fmt.Errorf("%w: trigger %q", trigger.ErrNotFound, id)
		}
		l := w.s.leases[id]
		if l != nil && l.endedTx != 0 {
			l = nil
		}
		return fn(w, old, l)
	})
}

// Delete implements trigger.Store. It also removes a record that does not
// decode.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.ready(ctx, checkID(id)); err != nil {
		return err
	}
	return s.write(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		old, err := w.get(id)
		switch {
		case err != nil:
			// Its index keys cannot be computed: drop its state entry (one
			// per state, probed directly) and the record. Due and Purge
			// remove any due or final entry left behind when they meet it.
			for _, st := range trigger.States() {
				w.check(w.b.state.Delete(stateKey(st, id)))
			}
			w.check(w.b.triggers.Delete([]byte(id)))
			w.fresh = append(w.fresh, freshNote{id: id})
		case old == nil:
			return fmt.Errorf("%w: trigger %q", trigger.ErrNotFound, id)
		default:
			w.remove(old)
			if !old.t.State.Final() && countable(old) {
				w.countChild(old, old.t.UpdatedAt) // its parent must not wait for it forever
			}
		}
		if l := w.s.leases[id]; l != nil && l.endedTx == 0 {
			w.endLease(l, false)
		} else {
			w.mark(id)
		}
		return nil
	})
}

// Purge implements trigger.Store. It walks the final index of q.State from
// the oldest update, so it reads only what it deletes (plus records it has to
// skip).
func (s *Store) Purge(ctx context.Context, q trigger.PurgeQuery) (int, error) {
	if err := s.ready(ctx, q.Validate()); err != nil {
		return 0, err
	}
	var n int
	err := s.write(ctx, func(w *writeTx) error {
		n = 0
		var victims []*record
		var stale [][]byte
		c := w.b.final.Cursor()
		prefix := []byte{byte(q.State)}
		for k, _ := c.Seek(prefix); k != nil && k[0] == prefix[0] && len(victims) < q.Limit; k, _ = c.Next() {
			if len(k) <= finalIDAt {
				stale = append(stale, bytes.Clone(k))
				continue
			}
			if !parseTimeKey(k[1:]).Before(q.Before) {
				break
			}
			id := string(k[finalIDAt:])
			r, err := w.get(id)
			switch {
			case err != nil:
				w.s.reportCorrupt(id, err)
			case r == nil || !bytes.Equal(finalKey(r.t.State, r.t.UpdatedAt, id), k):
				stale = append(stale, bytes.Clone(k)) // left by a corrupt record's Delete
			default:
				victims = append(victims, r)
			}
		}
		for _, k := range stale {
			w.check(w.b.final.Delete(k))
		}
		for _, r := range victims {
			w.remove(r)
		}
		n = len(victims)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
