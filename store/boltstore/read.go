package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
)

// snapshot begins a read transaction and copies the leases in effect for it
// (only the lease of id when id is not empty). The caller rolls tx back.
func (s *Store) snapshot(id string) (*bbolt.Tx, map[string]lease, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, nil, s.dbErr(err)
	}
	txid := tx.ID()
	var leases map[string]lease
	if id != "" {
		if l := s.leases[id]; l != nil && l.visibleAt(txid) {
			leases = map[string]lease{id: *l}
		}
		return tx, leases, nil
	}
	leases = make(map[string]lease, len(s.leases))
	for id, l := range s.leases {
		if l.visibleAt(txid) {
			leases[id] = *l
		}
	}
	return tx, leases, nil
}

// Get implements trigger.Store. A record that does not decode gives an error
// wrapping ErrCorrupt.
func (s *Store) Get(ctx context.Context, id string) (trigger.Trigger, error) {
	if err := s.ready(ctx, checkID(id)); err != nil {
		return trigger.Trigger{}, err
	}
	tx, leases, err := s.snapshot(id)
	if err != nil {
		return trigger.Trigger{}, err
	}
	defer tx.Rollback()
	v := tx.Bucket(bucketTriggers).Get([]byte(id))
	if v == nil {
		return trigger.Trigger{}, fmt.Errorf("%w: trigger %q", trigger.ErrNotFound, id)
	}
	t, err := decodeTrigger(id, v)
	if err != nil {
		return trigger.Trigger{}, err
	}
	if l, ok := leases[id]; ok {
		l.overlay(&t)
	}
	return t, nil
}

func decodeTrigger(id string, v []byte) (trigger.Trigger, error) {
	r, err := decodeRecord(id, v)
	if err != nil {
		return trigger.Trigger{}, corrupt(id, err)
	}
	t, err := r.trigger()
	if err != nil {
		return trigger.Trigger{}, corrupt(id, err)
	}
	return t, nil
}

// Due implements trigger.Store. It is a range scan of the due index from
// q.After (or the start) to q.Until, merged with the expired leases of this
// process; records that do not decode are skipped and logged.
func (s *Store) Due(ctx context.Context, q trigger.DueQuery) ([]trigger.Ref, error) {
	if err := s.ready(ctx, q.Validate()); err != nil {
		return nil, err
	}
	tx, leases, err := s.snapshot("")
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	triggers := tx.Bucket(bucketTriggers)
	start := dueStart(q.After)
	// The leases of this process that ended by q.Now, in due order.
	type item struct {
		key []byte
		l   lease
	}
	var expired []item
	for _, l := range leases {
		if !l.until.After(q.Now) {
			if k := dueKey(l.until, l.priority, l.id); bytes.Compare(k, start) >= 0 {
				expired = append(expired, item{k, l})
			}
		}
	}
	slices.SortFunc(expired, func(a, b item) int { return bytes.Compare(a.key, b.key) })

	// On disk, running triggers (claimed by an earlier run of the process)
	// sit at their lease time, which may lie after Until but not after Now.
	end := q.Until
	if q.Now.After(end) {
		end = q.Now
	}
	c := tx.Bucket(bucketDue).Cursor()
	k, _ := c.Seek(start)

	refs := make([]trigger.Ref, 0, min(q.Limit, 256))
	for len(refs) < q.Limit {
		// Step over the disk entries of triggers this process holds: their
		// lease decides, and expired ones come from the lease table.
		for ; k != nil; k, _ = c.Next() {
			if len(k) <= dueIDAt {
				s.repairDue(k)
				continue
			}
			if parseTimeKey(k).After(end) {
				k = nil
				break
			}
			if _, held := leases[string(k[dueIDAt:])]; !held {
				break
			}
		}
		if k == nil && len(expired) == 0 {
			break
		}
		if len(expired) > 0 && (k == nil || bytes.Compare(expired[0].key, k) < 0) {
			l := expired[0].l
			expired = expired[1:]
			if _, err := s.dueRecord(triggers, l.id); err == nil {
				refs = append(refs, trigger.Ref{ID: l.id, DueAt: l.until, Priority: l.priority})
			}
			continue
		}
		key := k
		k, _ = c.Next()
		ref, _ := parseDueKey(key)
		r, err := s.dueRecord(triggers, ref.ID)
		if errors.Is(err, trigger.ErrNotFound) {
			s.repairDue(key)
			continue
		}
		if err != nil {
			continue
		}
		switch at, ok := dueTime(&r.t); {
		case !ok || !at.Equal(ref.DueAt) || r.t.Priority != ref.Priority:
			s.repairDue(key)
		case r.t.State == trigger.StateRunning && !r.t.LeaseUntil.After(q.Now),
			r.t.State != trigger.StateRunning && !r.t.DueAt.After(q.Until):
			refs = append(refs, ref)
		}
	}
	return refs, nil
}

// dueStart returns the first due key at or after which a scan resuming
// after the position a starts (see trigger.DueQuery.After).
func dueStart(a trigger.Ref) []byte {
	switch {
	case a.DueAt.IsZero():
		return []byte{}
	case a.ID == "":
		// After every trigger due at or before a.DueAt, whatever its
		// priority and ID.
		return appendTimeKey(nil, a.DueAt.Add(time.Nanosecond))
	default:
		// The smallest key greater than a's own.
		return append(dueKey(a.DueAt, a.Priority, a.ID), 0)
	}
}

// dueRecord reads a record for the due scan, reporting one that does not
// decode.
func (s *Store) dueRecord(triggers *bbolt.Bucket, id string) (record, error) {
	v := triggers.Get([]byte(id))
	if v == nil {
		return record{}, trigger.ErrNotFound
	}
	r, err := checkRecord(id, v)
	if err != nil {
		s.reportCorrupt(id, err)
	}
	return r, err
}

// repairDue removes, in the next commit, a due entry that does not match
// its record: one left behind when a record that did not decode was deleted.
// It is checked again in the writing transaction.
func (s *Store) repairDue(key []byte) {
	key = bytes.Clone(key)
	s.writeLazy(func(w *writeTx) error {
		if len(key) > dueIDAt {
			r, err := w.get(string(key[dueIDAt:]))
			if err != nil {
				return nil // does not decode: reported, left alone
			}
			if r != nil {
				if bytes.Equal(key, keysOf(&r.t).due) {
					return nil
				}
			}
		}
		w.check(w.b.due.Delete(key))
		return nil
	})
}

// List implements trigger.Store. It is a range scan of the state index (and,
// for running triggers, of the lease table); records that do not decode are
// skipped and logged.
func (s *Store) List(ctx context.Context, q trigger.ListQuery) ([]trigger.Trigger, error) {
	if err := s.ready(ctx, q.Validate()); err != nil {
		return nil, err
	}
	tx, leases, err := s.snapshot("")
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	triggers := tx.Bucket(bucketTriggers)

	// Triggers this process claimed may still be scheduled or retrying on
	// disk: they are listed as running, from the lease table.
	if !stateIndexed(q.State) {
		return s.listScan(triggers, leases, q)
	}
	var leased []string
	if q.State == trigger.StateRunning {
		for id := range leases {
			if id > q.After {
				leased = append(leased, id)
			}
		}
		slices.Sort(leased)
	}
	c := tx.Bucket(bucketState).Cursor()
	start := stateKey(q.State, q.After)
	k, _ := c.Seek(start)
	if q.After != "" && bytes.Equal(k, start) {
		k, _ = c.Next()
	}
	var ts []trigger.Trigger
	for len(ts) < q.Limit {
		var id string
		onDisk := k != nil && k[0] == byte(q.State)
		switch {
		case !onDisk && len(leased) == 0:
			return ts, nil
		case len(leased) > 0 && (!onDisk || leased[0] <= string(k[1:])):
			id, leased = leased[0], leased[1:]
			if onDisk && id == string(k[1:]) {
				k, _ = c.Next()
			}
		default:
			id = string(k[1:])
			k, _ = c.Next()
		}
		v := triggers.Get([]byte(id))
		if v == nil {
			continue // left behind by the Delete of a record that did not decode
		}
		ts = s.appendInState(ts, id, v, leases, q.State, q.Type)
	}
	return ts, nil
}

// appendInState decodes the record v of id, with its lease if this process
// holds one, and appends it to ts if it is in state st (and of type typ,
// unless typ is zero). A record that does not decode is reported and
// skipped.
func (s *Store) appendInState(ts []trigger.Trigger, id string, v []byte, leases map[string]lease, st trigger.State, typ trigger.Type) []trigger.Trigger {
	t, err := decodeTrigger(id, v)
	if err != nil {
		s.reportCorrupt(id, err)
		return ts
	}
	if l, ok := leases[id]; ok {
		l.overlay(&t)
	}
	if t.State == st && (typ == 0 || t.Type == typ) {
		ts = append(ts, t)
	}
	return ts
}

// listScan lists the triggers of a state without a state index entry
// (scheduled or completed, see keysOf): a scan of the records in ID order
// that decodes only the records in the state. Triggers this process has
// claimed are running, whatever their record says.
func (s *Store) listScan(triggers *bbolt.Bucket, leases map[string]lease, q trigger.ListQuery) ([]trigger.Trigger, error) {
	var ts []trigger.Trigger
	c := triggers.Cursor()
	k, v := c.Seek([]byte(q.After))
	if q.After != "" && string(k) == q.After {
		k, v = c.Next()
	}
	for ; k != nil && len(ts) < q.Limit; k, v = c.Next() {
		// The type and the state are the second and third bytes of a
		// record (see codec.go); a record with another header is decoded,
		// and reported if it does not decode.
		if len(v) >= 4 && v[0] == recordVersion && (trigger.State(v[2]) != q.State || (q.Type != 0 && trigger.Type(v[1]) != q.Type)) {
			continue
		}
		ts = s.appendInState(ts, string(k), v, leases, q.State, q.Type)
	}
	return ts, nil
}
