package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
)

// Leases live in memory.
//
// bbolt locks the file exclusively, so only this process can hold a lease on
// a trigger of this file, and when the process dies every lease dies with
// it. A claim therefore need not be durable: Claim and Extend change the
// lease table (s.leases) and return without waiting for a commit. The
// trigger's record follows in the next group commit (a lazy op): state
// running, the owner, the token and the incremented attempt, so that a run
// cut off by a crash still counts as an attempt and its next claim is marked
// Recovered. The lease deadline is written as the claim time: after a
// restart no lease is live, so the trigger must be claimable at once and the
// due scan finds it in the order it was claimed. Trade-off: a crash within
// lazyDelay (20 ms) of a claim may lose that record, so that run is not
// counted and the next claim is not marked Recovered. When the run's Finish
// comes first, the claim's record is not written at all (see finishing).
//
// Every reader sees the table and the file consistently:
//
//   - A reader takes s.mu (read) around beginning its bbolt transaction and
//     looking at the table, and a lease counts for it unless the commit that
//     ended the lease (endedTx) is in its snapshot. So a reader sees a lease
//     exactly while its snapshot predates the outcome.
//   - Writes that change a trigger a claim must see (finish, cancel, delete)
//     mark it in s.pending when they are applied; Claim waits for such a
//     write to commit before it reads. Everything else a claim depends on is
//     checked under s.mu, which the ops that touch leases hold while they
//     apply.

// lease is a claim of this process. Fields other than id change only under
// s.mu.Lock.
type lease struct {
	id        string
	owner     string
	until     time.Time
	token     uint64
	attempt   int
	priority  int // to order the trigger in the due scan once expired
	claimedAt time.Time
	updatedAt time.Time // the claim's or the last Extend's now
	recovered bool
	endedTx   int  // transaction that ended the lease, 0 while it lasts
	finished  bool // endedTx is the commit of the lease's own Finish

	// rec is the trigger's record as the claim read it. While the lease
	// lasts, only the claim's own record can rewrite it, which changes
	// nothing but the lease fields, and Register, Pause, Unpause and
	// Checkpoint, which change rec along with it (under s.mu): Finish and
	// Park build the run's outcome from it.
	rec *record

	// finishing counts the Finish calls with this lease's token in flight.
	// While one is, the claim's own record is not written (the outcome
	// overwrites it in the same or the next commit); skipped says it was
	// left out, so a Finish that fails queues it again.
	finishing int
	skipped   bool
}

// visibleAt reports whether the lease is in effect for a reader whose
// snapshot is transaction txid.
func (l *lease) visibleAt(txid int) bool {
	return l.endedTx == 0 || l.endedTx > txid
}

// overlay shows t as running under the lease.
func (l *lease) overlay(t *trigger.Trigger) {
	t.State = trigger.StateRunning
	t.Owner, t.LeaseUntil, t.Token = l.owner, l.until, l.token
	t.Attempt, t.Recovered = l.attempt, l.recovered
	t.UpdatedAt = l.updatedAt
}

// Fencing tokens come from one counter per file. Every token handed out is
// at most the ceiling stored in the meta bucket, and each Open starts above
// the stored ceiling, so tokens grow across restarts and crashes. The
// ceiling is raised a block at a time, ahead of need, by a lazy op.
const tokenBlock = 1 << 32

// reserveTokens raises the stored ceiling by one block and returns the old
// ceiling.
func reserveTokens(meta *bbolt.Bucket) (uint64, error) {
	var old uint64
	if v := meta.Get(keyTokens); len(v) == 8 {
		old = binary.BigEndian.Uint64(v)
	} else if v != nil {
		return 0, fmt.Errorf("%w: bad token ceiling in the meta bucket", ErrFormat)
	}
	if old > 1<<63 {
		return 0, fmt.Errorf("%w: fencing tokens exhausted", ErrFormat)
	}
	if err := meta.Put(keyTokens, binary.BigEndian.AppendUint64(nil, old+tokenBlock)); err != nil {
		return 0, fmt.Errorf("boltstore: reserve fencing tokens: %w", err)
	}
	return old, nil
}

// nextToken returns a new fencing token. Callers hold s.mu.
func (s *Store) nextToken() (uint64, error) {
	if s.lastToken >= s.ceiling {
		// Four billion claims within one commit: not a real case.
		return 0, errors.New("boltstore: fencing tokens used up before their reservation committed; retry")
	}
	s.lastToken++
	if !s.reserving && s.ceiling-s.lastToken < tokenBlock/2 {
		s.reserving = true
		s.writeLazy(func(w *writeTx) error {
			_, err := reserveTokens(w.b.meta)
			w.check(err)
			w.onCommit = append(w.onCommit, func() { s.ceiling += tokenBlock; s.reserving = false })
			w.onAbort = append(w.onAbort, func() { s.reserving = false })
			return nil
		})
	}
	return s.lastToken, nil
}

// Claim implements trigger.Store. It does not wait for the disk: see the
// package documentation.
func (s *Store) Claim(ctx context.Context, id string, c trigger.Claim) (trigger.Trigger, error) {
	if err := s.ready(ctx, c.Validate(), checkID(id)); err != nil {
		return trigger.Trigger{}, err
	}
	for {
		s.mu.Lock()
		if wait := s.pending[id]; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return trigger.Trigger{}, ctx.Err()
			}
		}
		r, l, err := s.claimLocked(id, c)
		s.mu.Unlock()
		if err != nil {
			return trigger.Trigger{}, err
		}
		t, err := r.trigger()
		if err != nil {
			return trigger.Trigger{}, corrupt(id, err)
		}
		l.overlay(&t)
		return t, nil
	}
}

// claimLocked is Claim under s.mu. It returns the record as read and a copy
// of the new lease.
func (s *Store) claimLocked(id string, c trigger.Claim) (*record, lease, error) {
	r := s.fresh.get(id)
	if r == nil {
		var err error
		if r, err = s.read(id); err != nil {
			return nil, lease{}, err
		}
	}
	t := &r.t
	attempt, recovered := t.Attempt, false
	switch old := s.leases[id]; {
	case old != nil:
		if old.until.After(c.Now) {
			return nil, lease{}, fmt.Errorf("%w: trigger %q is held by %q until %v", trigger.ErrClaimed, id, old.owner, old.until)
		}
		attempt, recovered = old.attempt, true
	case t.State.Final():
		return nil, lease{}, fmt.Errorf("%w: trigger %q is %s", trigger.ErrInvalidState, id, t.State)
	case t.State == trigger.StateRunning:
		// Claimed by an earlier run of the process: that lease died with it.
		recovered = true
	case c.Force:
	case t.Paused:
		return nil, lease{}, fmt.Errorf("%w: trigger %q is paused", trigger.ErrNotDue, id)
	case t.State == trigger.StateWaiting && (t.DueAt.IsZero() || t.DueAt.After(c.Now)):
		return nil, lease{}, fmt.Errorf("%w: trigger %q is waiting to be fired", trigger.ErrNotDue, id)
	case t.DueAt.After(c.Now):
		return nil, lease{}, fmt.Errorf("%w: trigger %q is due at %v", trigger.ErrNotDue, id, t.DueAt)
	}
	token, err := s.nextToken()
	if err != nil {
		return nil, lease{}, err
	}
	l := &lease{
		id:        id,
		owner:     c.Owner,
		until:     c.Until,
		token:     token,
		attempt:   attempt + 1,
		priority:  t.Priority,
		claimedAt: c.Now,
		updatedAt: c.Now,
		recovered: recovered,
		rec:       r,
	}
	s.leases[id] = l
	s.fresh.drop(id)
	s.writeLazy(func(w *writeTx) error { return w.persistClaim(l) })
	return r, *l, nil
}

// persistClaim writes the record of a claim that is still current (see the
// comment at the top of this file).
func (w *writeTx) persistClaim(l *lease) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.leases[l.id] != l || l.endedTx != 0 {
		return nil // a newer claim, or the outcome, is on its way
	}
	if l.finishing > 0 {
		l.skipped = true
		return nil
	}
	old, err := w.get(l.id)
	if err != nil || old == nil {
		return err
	}
	r := *old
	t := &r.t
	t.State = trigger.StateRunning
	t.Owner, t.Token, t.Attempt = l.owner, l.token, l.attempt
	t.UpdatedAt, t.LeaseUntil = l.claimedAt, l.claimedAt
	return w.replace(old, &r)
}

// finishing notes a Finish with token in flight on id and returns the
// lease it finishes and the lease's record, or nil when no lease of this
// process has the token (see lease.finishing). finishDone ends what
// finishing began.
func (s *Store) finishing(id string, token uint64) (*lease, *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l == nil || l.token != token {
		return nil, nil
	}
	l.finishing++
	return l, l.rec
}

// finishDone notes that a Finish of l returned err.
func (s *Store) finishDone(l *lease, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l.finishing--
	if err != nil && l.skipped && s.leases[l.id] == l && l.endedTx == 0 {
		l.skipped = false
		s.writeLazy(func(w *writeTx) error { return w.persistClaim(l) })
	}
}

// Extend implements trigger.Store. The new deadline is kept in memory only.
func (s *Store) Extend(ctx context.Context, id string, token uint64, now, until time.Time) error {
	if err := s.ready(ctx, checkID(id),
		invalidIf(now.IsZero() || !until.After(now), "lease deadline %v is not after now %v", until, now)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l == nil || l.token != token || (l.endedTx != 0 && !l.finished) {
		return s.leaseLost(id, token)
	}
	// A lease whose own Finish awaits its commit lasts until that commit:
	// the owner heartbeats a run whose outcome is on its way.
	l.until, l.updatedAt = until, now
	return nil
}

// leaseLost returns the error for a token that is not current on id: it
// wraps ErrLeaseLost, and ErrNotFound too when the trigger does not exist.
func (s *Store) leaseLost(id string, token uint64) error {
	_, err := s.read(id)
	if errors.Is(err, trigger.ErrNotFound) {
		return fmt.Errorf("%w: %w", trigger.ErrLeaseLost, err)
	}
	return fmt.Errorf("%w: token %d is not the current claim of trigger %q", trigger.ErrLeaseLost, token, id)
}

// read returns the committed record of id, an error wrapping ErrNotFound, or
// one wrapping ErrCorrupt.
func (s *Store) read(id string) (*record, error) {
	var r record
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTriggers).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: trigger %q", trigger.ErrNotFound, id)
		}
		var err error
		if r, err = decodeRecord(id, v); err != nil {
			return corrupt(id, err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, trigger.ErrNotFound) || errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, s.dbErr(err)
	}
	return &r, nil
}
