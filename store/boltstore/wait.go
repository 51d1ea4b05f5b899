package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/triggerkit/trigger"
)

// Waits: the trigger.WaitStore side of the store.
//
// Two buckets (format version 5) hold the wait state besides the records:
//
//	tokens    key -> state | id | payload     one per wait token
//	children  len(parent) | parent | child    one per child, empty value
//
// A token value is its state byte, the bound trigger's ID (a uvarint length
// then the bytes; empty for an early resume) and, for an early resume, the
// payload's JSON to the end. A token record lives from the first time the
// key is seen (a resume, or a trigger waiting for it) until the trigger
// bound to it is deleted or purged; a resume for which no trigger ever
// waits stays in the file. The children bucket lets a parent's run read its
// children with one range scan; a parent ID is at most 255 bytes, so its
// length fits the one-byte prefix.
//
// Every change goes through the commit group under s.mu, like Finish: Park
// is fenced by the claim's token and ends the lease; Resume and the end of
// a child mark the trigger they make due, so a claim waits for the commit.

var _ trigger.WaitStore = (*Store)(nil)

// Token states, the first byte of a token value.
const (
	tokenEarly     byte = iota + 1 // resumed before any trigger waited for it
	tokenWaiter                    // a trigger waits (or waited) for it
	tokenDelivered                 // a resume was delivered to the trigger
)

type tokenRec struct {
	state   byte
	id      string
	payload []byte
}

func (w *writeTx) getToken(key string) (*tokenRec, error) {
	v := w.b.tokens.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	if len(v) < 2 || v[0] < tokenEarly || v[0] > tokenDelivered {
		return nil, fmt.Errorf("%w: wait token %q: bad record", ErrCorrupt, key)
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n > uint64(len(v)-1-k) {
		return nil, fmt.Errorf("%w: wait token %q: truncated record", ErrCorrupt, key)
	}
	id := v[1+k : 1+k+int(n)]
	tk := &tokenRec{state: v[0], id: string(id)}
	if rest := v[1+k+int(n):]; len(rest) > 0 {
		tk.payload = bytes.Clone(rest)
	}
	return tk, nil
}

func (w *writeTx) putToken(key string, tk tokenRec) {
	v := append([]byte{tk.state}, appendString(nil, tk.id)...)
	w.check(w.b.tokens.Put([]byte(key), append(v, tk.payload...)))
}

func childKey(parent, child string) []byte {
	b := make([]byte, 0, 1+len(parent)+len(child))
	b = append(b, byte(len(parent)))
	b = append(b, parent...)
	return append(b, child...)
}

// mergeJSON merges the payload extra into base, both JSON objects or nil.
func mergeJSON(base, extra []byte) ([]byte, error) {
	if extra == nil {
		return base, nil
	}
	var b, e trigger.Payload
	if base != nil {
		if err := json.Unmarshal(base, &b); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal(extra, &e); err != nil {
		return nil, err
	}
	return json.Marshal(trigger.MergePayload(b, e))
}

// checkKeys checks that the wait keys of the waiting triggers among news
// are free (or hold an early resume), before anything is written.
func (w *writeTx) checkKeys(news []change) error {
	var seen map[string]string
	for _, c := range news {
		t := &c.rec.t
		if t.State != trigger.StateWaiting || t.WaitKey == "" {
			continue
		}
		if other, dup := seen[t.WaitKey]; dup {
			return fmt.Errorf("%w: triggers %q and %q wait for one key %q", trigger.ErrDuplicate, other, t.ID, t.WaitKey)
		}
		if seen == nil {
			seen = make(map[string]string)
		}
		seen[t.WaitKey] = t.ID
		tk, err := w.getToken(t.WaitKey)
		if err != nil {
			return err
		}
		if tk != nil && tk.state != tokenEarly {
			return fmt.Errorf("%w: trigger %q: wait key %q is taken by trigger %q", trigger.ErrDuplicate, t.ID, t.WaitKey, tk.id)
		}
	}
	return nil
}

// binds are the writes of the wait buckets that go with new records: the
// tokens they bind and the children they index.
type binds struct {
	tokens   []tokenWrite
	children [][]byte
}

type tokenWrite struct {
	key string
	rec tokenRec
}

func (b *binds) write(w *writeTx) {
	for _, tw := range b.tokens {
		w.putToken(tw.key, tw.rec)
	}
	for _, k := range b.children {
		w.check(w.b.children.Put(k, noValue))
	}
}

// bindNew prepares the wait state of the new records news, whose keys
// checkKeys has checked: the children among them are indexed under their
// parents, and a waiting trigger with a wait key is bound to it (an early
// resume ends its wait at once: its record changes, and is encoded again).
// It writes nothing: the caller writes the returned binds with the records.
func bindNew(w *writeTx, news []change) ([]change, binds, error) {
	var b binds
	for i := range news {
		t := &news[i].rec.t
		if t.ParentID != "" {
			b.children = append(b.children, childKey(t.ParentID, t.ID))
		}
		if t.State != trigger.StateWaiting || t.WaitKey == "" {
			continue
		}
		r := *news[i].rec // a copy: the record before the binding stays as it was
		r.t.Wait = trigger.Wait{Kind: trigger.WaitKindToken}
		tk, err := w.waitOn(&r, r.t.UpdatedAt)
		if err != nil {
			return nil, b, err
		}
		c, err := newChange(&r)
		if err != nil {
			return nil, b, err
		}
		c.rec = &r
		news[i] = c // the op runs once: its slice is its own to change
		b.tokens = append(b.tokens, tokenWrite{t.WaitKey, tk})
	}
	return news, b, nil
}

// waitOn binds r's wait key to r, about to wait for it, and returns the
// token record to write; if the key has an early resume (or was delivered
// to r before), r is scheduled at now with the resume instead. It writes
// nothing.
func (w *writeTx) waitOn(r *record, now time.Time) (tokenRec, error) {
	t := &r.t
	tk, err := w.getToken(t.WaitKey)
	if err != nil {
		return tokenRec{}, err
	}
	switch {
	case tk == nil:
		return tokenRec{state: tokenWaiter, id: t.ID}, nil
	case tk.state == tokenEarly:
		p, err := mergeJSON(r.payload, tk.payload)
		if err != nil {
			return tokenRec{}, fmt.Errorf("boltstore: merging the resume of %q: %w", t.WaitKey, err)
		}
		r.payload = p
		wake(t, now, true)
		return tokenRec{state: tokenDelivered, id: t.ID}, nil
	case tk.state == tokenDelivered: // delivered to r before: its run asks again
		wake(t, now, true)
		return *tk, nil
	}
	return *tk, nil // bound to r already
}

// wake ends the wait of t: it becomes scheduled at now, with Wait.Resumed
// set if resumed. PlannedAt stays: a wait is part of the run that parked
// (a trigger saved waiting, which has none, is planned at now).
func wake(t *trigger.Trigger, now time.Time, resumed bool) {
	now = now.Round(0).UTC()
	t.State, t.DueAt = trigger.StateScheduled, now
	if t.PlannedAt.IsZero() {
		t.PlannedAt = now
	}
	if resumed {
		t.Wait.Resumed = true
	}
}

// countable marks child r as counted in its parent's wait, and reports
// whether it was not counted before.
func countable(r *record) bool {
	if r.t.ParentID == "" || r.counted {
		return false
	}
	r.counted = true
	return true
}

// countChild counts the end of one child in the wait of parentID; the last
// one makes the parent due at now. Callers hold s.mu.
func (w *writeTx) countChild(parentID string, now time.Time) {
	old, err := w.get(parentID)
	if err != nil || old == nil {
		return
	}
	if l := w.s.leases[parentID]; l != nil && l.endedTx == 0 {
		return // fired before its children ended: its wait is over
	}
	t := &old.t
	if t.State != trigger.StateWaiting || t.Wait.Kind != trigger.WaitKindChildren || t.Wait.Pending == 0 {
		return
	}
	r := *old
	r.t.Wait.Pending--
	if r.t.Wait.Pending == 0 {
		wake(&r.t, now, false)
		r.t.UpdatedAt = now
	}
	w.check(w.replace(old, &r))
	w.mark(parentID)
}

// forget removes the wait state of a removed record: its children index
// entry and the token bound to it.
func (w *writeTx) forget(r *record) {
	t := &r.t
	if t.ParentID != "" {
		w.check(w.b.children.Delete(childKey(t.ParentID, t.ID)))
	}
	if t.WaitKey != "" {
		if tk, err := w.getToken(t.WaitKey); err == nil && tk != nil && tk.state != tokenEarly && tk.id == t.ID {
			w.check(w.b.tokens.Delete([]byte(t.WaitKey)))
		}
	}
}

// parked returns the record of l's trigger, rec, as Park p leaves it (the
// token wait's binding is left to the caller).
func parked(l *lease, rec *record, p *trigger.Park, children int) record {
	r := *rec
	t := &r.t
	t.Token = l.token
	t.Owner, t.LeaseUntil, t.Recovered, t.UpdatedAt, t.Attempt = "", time.Time{}, false, p.Now, 0
	t.Wait = trigger.Wait{Kind: p.Kind, Until: p.Until}
	switch p.Kind {
	case trigger.WaitKindTime:
		t.State, t.DueAt = trigger.StateScheduled, p.Until
	case trigger.WaitKindToken:
		t.State, t.DueAt, t.WaitKey = trigger.StateWaiting, p.Until, p.Key
	case trigger.WaitKindChildren:
		t.State, t.DueAt, t.Wait.Pending = trigger.StateWaiting, time.Time{}, children
	}
	normalise(t)
	return r
}

// Park implements trigger.WaitStore. Like Finish, it builds the parked
// record from the lease's copy of the trigger (see lease.rec), so that a
// Register, Pause or Checkpoint during the run is kept.
func (s *Store) Park(ctx context.Context, id string, token uint64, p trigger.Park) (time.Time, error) {
	if err := s.ready(ctx, p.Validate(), checkID(id)); err != nil {
		return time.Time{}, err
	}
	children, err := newRecords(p.Now, p.Children)
	if err != nil {
		return time.Time{}, err
	}
	for i := range children {
		r := children[i].rec
		r.t.ParentID = id
		if children[i], err = newChange(r); err != nil {
			return time.Time{}, err
		}
		children[i].rec = r
	}
	l, _ := s.finishing(id, token) // the record is read in the commit: see parked
	if l == nil {
		return time.Time{}, s.leaseLost(id, token)
	}
	var due time.Time
	err = s.write(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		if w.s.leases[id] != l || l.endedTx != 0 {
			if w.lookup([]byte(id)) == nil {
				return fmt.Errorf("%w: %w: trigger %q", trigger.ErrLeaseLost, trigger.ErrNotFound, id)
			}
			return fmt.Errorf("%w: token %d is not the current claim of trigger %q", trigger.ErrLeaseLost, token, id)
		}
		r := parked(l, l.rec, &p, len(children))
		var tk tokenRec
		if p.Kind == trigger.WaitKindToken {
			cur, err := w.getToken(p.Key)
			if err != nil {
				return err
			}
			if cur != nil && cur.state != tokenEarly && cur.id != id {
				return fmt.Errorf("%w: trigger %q: wait key %q is taken by trigger %q", trigger.ErrDuplicate, id, p.Key, cur.id)
			}
			if tk, err = w.waitOn(&r, p.Now); err != nil {
				return err
			}
		}
		c, err := newChange(&r)
		if err != nil {
			return err
		}
		from, err := w.storedKeys(c.key, id)
		if err != nil {
			if errors.Is(err, trigger.ErrNotFound) {
				err = fmt.Errorf("%w: %w", trigger.ErrLeaseLost, err)
			}
			return err
		}
		c.from = from
		if err := w.insert(children, c); err != nil {
			return err
		}
		if p.Kind == trigger.WaitKindToken {
			w.putToken(p.Key, tk)
		}
		w.endLease(l, true)
		due = r.t.DueAt
		return nil
	})
	s.finishDone(l, err)
	if err != nil {
		return time.Time{}, err
	}
	return due, nil
}

// Resume implements trigger.WaitStore.
func (s *Store) Resume(ctx context.Context, now time.Time, key string, payload trigger.Payload) (trigger.ResumeResult, string, error) {
	if err := s.ready(ctx, invalidIf(key == "", "empty wait key"), invalidIf(now.IsZero(), "resume needs now")); err != nil {
		return 0, "", err
	}
	pl, err := marshalPayload(key, payload)
	if err != nil {
		return 0, "", err
	}
	var res trigger.ResumeResult
	var id string
	err = s.write(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		res, id = 0, ""
		tk, err := w.getToken(key)
		if err != nil {
			return err
		}
		switch {
		case tk == nil:
			w.putToken(key, tokenRec{state: tokenEarly, payload: pl})
			res = trigger.ResumeStored
			return nil
		case tk.state != tokenWaiter:
			res = trigger.ResumeDuplicate
			return nil
		}
		res = trigger.ResumeTooLate
		old, err := w.get(tk.id)
		if err != nil || old == nil {
			return err
		}
		if l := w.s.leases[tk.id]; l != nil && l.endedTx == 0 {
			return nil // running: fired or timed out
		}
		t := &old.t
		if t.State != trigger.StateWaiting || t.WaitKey != key || t.Wait.Kind != trigger.WaitKindToken || t.Wait.Resumed {
			return nil
		}
		r := *old
		if r.payload, err = mergeJSON(old.payload, pl); err != nil {
			return corrupt(tk.id, err)
		}
		wake(&r.t, now, true)
		r.t.UpdatedAt = now
		if err := w.replace(old, &r); err != nil {
			return err
		}
		w.putToken(key, tokenRec{state: tokenDelivered, id: tk.id})
		w.mark(tk.id)
		res, id = trigger.ResumeDelivered, tk.id
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return res, id, nil
}

// Children implements trigger.WaitStore.
func (s *Store) Children(ctx context.Context, parentID string) ([]trigger.Trigger, error) {
	if err := s.ready(ctx, checkID(parentID), invalidIf(len(parentID) > 255, "parent ID longer than 255 bytes")); err != nil {
		return nil, err
	}
	tx, leases, err := s.snapshot("")
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	triggers := tx.Bucket(bucketTriggers)
	prefix := childKey(parentID, "")
	c := tx.Bucket(bucketChildren).Cursor()
	var ts []trigger.Trigger
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		v := triggers.Get([]byte(id))
		if v == nil {
			continue
		}
		t, err := decodeTrigger(id, v)
		if err != nil {
			return nil, err
		}
		if l, ok := leases[id]; ok {
			l.overlay(&t)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// Checkpoint implements trigger.WaitStore. It writes the payload into the
// stored record and into the lease's copy of it (see lease.rec), which the
// run's outcome is built on: a Finish after it keeps the checkpoint.
func (s *Store) Checkpoint(ctx context.Context, id string, token uint64, now time.Time, payload trigger.Payload) error {
	if err := s.ready(ctx, checkID(id), invalidIf(now.IsZero(), "checkpoint needs now")); err != nil {
		return err
	}
	pl, err := marshalPayload(id, payload)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *writeTx) error {
		w.s.mu.Lock()
		defer w.s.mu.Unlock()
		old, err := w.get(id)
		if err != nil {
			return err
		}
		l := w.s.leases[id]
		if l == nil || l.token != token || l.endedTx != 0 || old == nil {
			if old == nil {
				return fmt.Errorf("%w: %w: trigger %q", trigger.ErrLeaseLost, trigger.ErrNotFound, id)
			}
			return fmt.Errorf("%w: token %d is not the current claim of trigger %q", trigger.ErrLeaseLost, token, id)
		}
		r := *old
		r.payload, r.t.UpdatedAt = pl, now
		if err := w.replace(old, &r); err != nil {
			return err
		}
		cp := *l.rec
		cp.payload = pl
		w.setRec(l, &cp)
		l.updatedAt = now
		return nil
	})
}
