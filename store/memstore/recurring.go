package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/triggerkit/trigger"
)

// Register saves t, or updates the stored trigger with its ID to t's
// definition; see trigger.Store and trigger.Redefine.
func (s *Store) Register(ctx context.Context, now time.Time, t trigger.Trigger) (trigger.RegisterResult, error) {
	var nrs [1]recordBuf
	nr := &nrs[0]
	if err := s.prepare(nr, &t, now); err != nil {
		return 0, err
	}
	// An update changes the trigger's record only: the wait state it
	// holds (its parent, its wait and a key bound to it) stays as it is.
	// Only a save may bind a key (see lockMask).
	m := lockMask(nrs[:])
	s.lock(m)
	defer s.unlock(m)
	return s.register(nrs[:], &t, now)
}

// register is Register of t, whose record is nrs[0]. The shards of
// lockMask(nrs) must be locked.
func (s *Store) register(nrs []recordBuf, t *trigger.Trigger, now time.Time) (trigger.RegisterResult, error) {
	nr := &nrs[0]
	sh := s.shard(nr.hash)
	i, r, ok := sh.ids.find(t.ID, nr.hash)
	if !ok {
		if err := s.insert(nrs); err != nil {
			return 0, err
		}
		return trigger.RegisterCreated, nil
	}
	var old trigger.Trigger
	payload := sh.trigger(r, &old)
	u, res := trigger.Redefine(old, *t, payload == nr.payloadJSON, now)
	if res != trigger.RegisterUpdated {
		return res, nil
	}
	if r.state != trigger.StateRunning {
		sh.detach(i) // priority, state and due time may change
	}
	r.typ, r.priority, r.maxAttempts, r.misfire = u.Type, nr.priority, nr.maxAttempts, u.Misfire
	r.state, r.due, r.attempt, r.updated = u.State, nanos(u.DueAt), int32(u.Attempt), nr.updated
	if u.Wait.Kind == trigger.WaitKindNone {
		sh.recs.setPayload(r, nr.payloadJSON) // in a wait, the run's payload stays (see trigger.Redefine)
	}
	kept := r.rare() // the wait fields, which the store owns
	r.setExtra(&u)
	m := r.rare()
	m.parentID, m.counted, m.batch, m.waitBatch, m.wait = kept.parentID, kept.counted, kept.batch, kept.waitBatch, u.Wait
	r.setRare(m)
	r.setPlanned(nanos(u.PlannedAt))
	if r.state != trigger.StateRunning {
		sh.attach(i)
	}
	return res, nil
}

// Pause sets Paused; see trigger.Store.
func (s *Store) Pause(ctx context.Context, id string, now time.Time) error {
	if id == "" {
		return errEmptyID
	}
	n, err := stamp(now, "now")
	if err != nil {
		return err
	}
	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, r, err := sh.pausable(id, h)
	if err != nil || r.paused {
		return err
	}
	sh.setPaused(i, r, true)
	r.updated = n
	return nil
}

// Unpause clears Paused; see trigger.Store.
func (s *Store) Unpause(ctx context.Context, id string, now, at time.Time, ifCron *trigger.CronSpec) error {
	if id == "" {
		return errEmptyID
	}
	n, err := stamp(now, "now")
	if err != nil {
		return err
	}
	var due int64
	if !at.IsZero() {
		if due, err = stamp(at, "due time"); err != nil {
			return err
		}
	}
	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, r, err := sh.pausable(id, h)
	if err != nil {
		return err
	}
	if err := r.checkSpec(ifCron); err != nil {
		return err
	}
	if !r.paused {
		return nil
	}
	if at.IsZero() || (r.state != trigger.StateScheduled && r.state != trigger.StateRetrying) {
		sh.setPaused(i, r, false)
	} else {
		sh.detach(i)
		r.paused = false
		r.state, r.due, r.attempt = trigger.StateScheduled, due, 0
		r.setPlanned(due)
		sh.attach(i)
	}
	r.updated = n
	return nil
}

// pausable returns the trigger id, whose ID hashes to h, and its ref, if
// it is not final. sh.mu must be held.
func (sh *shard) pausable(id string, h uint64) (uint32, record, error) {
	i, r, ok := sh.ids.find(id, h)
	switch {
	case !ok:
		return 0, record{}, notFound(id)
	case r.state.Final():
		return 0, record{}, fmt.Errorf("memstore: trigger %q is %s: %w", id, r.state, trigger.ErrInvalidState)
	}
	return i, r, nil
}

// setPaused changes the flag of record i, r, and its place in the due index
// with it. sh.mu must be held.
func (sh *shard) setPaused(i uint32, r record, paused bool) {
	if r.state == trigger.StateRunning {
		r.paused = paused // a running trigger is not in the due index
		return
	}
	sh.detach(i)
	r.paused = paused
	sh.attach(i)
}
