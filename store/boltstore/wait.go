package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
)

// Waits: the trigger.WaitStore side of the store.
//
// Two buckets (format version 5) hold the wait state besides the records:
//
//	tokens    key -> state | changed | id | payload   one per wait token
//	children  len(parent) | parent | child            one per child, empty value
//
// A token value (format version 6) is its state byte, the time of its last
// change (created, bound to a waiter, delivered: a zig-zag varint of Unix
// seconds then a uvarint of nanoseconds, as in records), the bound
// trigger's ID (a uvarint length then the bytes; empty for an early resume)
// and, for an early resume, the payload's JSON to the end. Version 5 values
// had no time; Open rewrites them (see upgradeTokens). A token record lives
// from the first time the key is seen (a resume, or a trigger waiting for
// it) until the trigger bound to it is deleted or purged, or PurgeTokens
// deletes it. The children bucket lets a parent's run read its children
// with one range scan; a parent ID is at most 255 bytes, so its length fits
// the one-byte prefix.
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

// tokenRec is a decoded token value.
type tokenRec struct {
	state   byte
	changed time.Time // its last change: created, bound, delivered
	id      string
	payload []byte
}

// appendToken appends the value of tk to dst.
func appendToken(dst []byte, tk *tokenRec) []byte {
	dst = append(dst, tk.state)
	dst = binary.AppendVarint(dst, tk.changed.Unix())
	dst = binary.AppendUvarint(dst, uint64(tk.changed.Nanosecond()))
	dst = appendString(dst, tk.id)
	return append(dst, tk.payload...)
}

// errBadToken says why a token value does not decode; callers wrap it in
// ErrCorrupt with the key.
var errBadToken = errors.New("bad state")

// decodeToken decodes a token value. It never panics, and the result owns
// its memory (v may be bbolt's mmap).
func decodeToken(v []byte) (tokenRec, error) {
	if len(v) == 0 || v[0] < tokenEarly || v[0] > tokenDelivered {
		return tokenRec{}, errBadToken
	}
	d := decoder{b: v[1:]}
	tk := tokenRec{state: v[0]}
	d.time(1, 1, &tk.changed)
	id := d.bytes()
	if d.err != nil {
		return tokenRec{}, d.err
	}
	tk.id = string(id)
	if len(d.b) > 0 {
		tk.payload = bytes.Clone(d.b)
	}
	return tk, nil
}

func (w *writeTx) getToken(key string) (*tokenRec, error) {
	v := w.b.tokens.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	tk, err := decodeToken(v)
	if err != nil {
		return nil, fmt.Errorf("%w: wait token %q: %v", ErrCorrupt, key, err)
	}
	return &tk, nil
}

func (w *writeTx) putToken(key string, tk tokenRec) {
	w.check(w.b.tokens.Put([]byte(key), appendToken(nil, &tk)))
}

// waitsFor reports whether t waits for key: it is waiting for it in a
// token wait not yet resumed, the trigger Resume would deliver key to.
func waitsFor(t *trigger.Trigger, key string) bool {
	return t.State == trigger.StateWaiting && t.WaitKey == key && t.Wait.Kind == trigger.WaitKindToken && !t.Wait.Resumed
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
// token record to write, changed at now; if the key has an early resume
// (or was delivered to r before), r is scheduled at now with the resume
// instead. It writes nothing.
func (w *writeTx) waitOn(r *record, now time.Time) (tokenRec, error) {
	t := &r.t
	tk, err := w.getToken(t.WaitKey)
	if err != nil {
		return tokenRec{}, err
	}
	switch {
	case tk == nil:
		return tokenRec{state: tokenWaiter, changed: now, id: t.ID}, nil
	case tk.state == tokenEarly:
		p, err := mergeJSON(r.payload, tk.payload)
		if err != nil {
			return tokenRec{}, fmt.Errorf("boltstore: merging the resume of %q: %w", t.WaitKey, err)
		}
		r.payload = p
		wake(t, now, true)
		return tokenRec{state: tokenDelivered, changed: now, id: t.ID}, nil
	case tk.state == tokenDelivered: // delivered to r before: its run asks again
		wake(t, now, true)
	}
	tk.changed = now // bound to r again
	return *tk, nil
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

// countChild counts the end of child c in its parent's wait, if the parent
// still waits for c's batch; the last one makes the parent due at now.
// Callers hold s.mu.
//
// A parent can leave a children wait before its children end (it is fired,
// canceled and sent back, planned anew by Register, or deleted and saved
// again under its ID) and park on a new batch later: a child of the wait it
// left must not count in the new one, or the parent would resume before its
// new children ended. So each child carries its batch: the fencing token of
// the parent's claim that parked it (record.batch), which a waiting parent
// keeps as its Token until a claim takes it out of the wait. Tokens come
// from one counter per file, so no two parks share one, even of two
// triggers that had one ID in turn. A child written before format version 7
// has no batch; it belongs to the wait its parent was in when Open upgraded
// the file, if any, which a parent still waits in if its token is at most
// the file's token ceiling then (Store.unbatched): any park since has a
// higher token.
func (w *writeTx) countChild(c *record, now time.Time) {
	parentID := c.t.ParentID
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
	if c.batch != t.Token && (c.batch != 0 || t.Token > w.s.unbatched) {
		return // the parent left the wait of c's batch: it waits for other children
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
		r.t.ParentID, r.batch = id, token // see countChild
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
		if err := w.rewriteLeased(c, id, children); err != nil {
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
			w.putToken(key, tokenRec{state: tokenEarly, changed: now, payload: pl})
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
		if !waitsFor(&old.t, key) {
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
		w.putToken(key, tokenRec{state: tokenDelivered, changed: now, id: tk.id})
		w.mark(tk.id)
		res, id = trigger.ResumeDelivered, tk.id
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return res, id, nil
}

// Children implements trigger.WaitStore. It returns the parent's last
// batch (see countChild): the children with the highest batch, whether or
// not the parent still exists. The children written before format version
// 7 make one batch, older than any since.
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
	var rs []record
	var last uint64
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		v := triggers.Get([]byte(id))
		if v == nil {
			continue
		}
		r, err := decodeRecord(id, v)
		if err != nil {
			return nil, corrupt(id, err)
		}
		last = max(last, r.batch)
		rs = append(rs, r)
	}
	var ts []trigger.Trigger
	for i := range rs {
		if rs[i].batch != last {
			continue
		}
		t, err := rs[i].trigger()
		if err != nil {
			return nil, corrupt(t.ID, err)
		}
		if l, ok := leases[t.ID]; ok {
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

// Token purge.
//
// The tokens bucket is ordered by key, not by time, so PurgeTokens reads
// it all: in pages of tokenPage records, each in a read transaction of its
// own, which does not hold up the committer. A page reads a token's time
// first, and the trigger bound to it only for an old one. The stale
// tokens of a page are then deleted by one write through the commit group,
// which checks each again (its value unchanged, its trigger still not
// waiting for it) so that a token bound, resumed or rewritten since the
// read is kept. A call goes on from where the last one stopped (s.sweep)
// and at most once round the bucket, so the calls of one purge of the
// scheduler read each token about once, whatever their limit.

// tokenPage is the most token records one page of PurgeTokens reads, and
// so the most one of its writes deletes.
const tokenPage = 1024

// tokenSweep is where PurgeTokens goes on: after the key it read last.
type tokenSweep struct {
	mu    sync.Mutex
	after []byte // nil: from the first key
}

func (ts *tokenSweep) load() []byte {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.after
}

func (ts *tokenSweep) store(after []byte) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.after = after
}

// staleToken is a token that a page found purgeable, with its value then.
type staleToken struct{ key, value []byte }

// PurgeTokens implements trigger.WaitStore; see the comment above
// tokenPage for how it goes. Each page's deletes are committed and synced
// before the next page is read; on error, the pages before stay deleted.
// A token record that does not decode is kept and logged. Its cost is a
// read of every token record per call that deletes fewer than limit.
func (s *Store) PurgeTokens(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.ready(ctx, invalidIf(before.IsZero(), "token purge needs a cutoff time"),
		invalidIf(limit <= 0, "token purge limit %d must be positive", limit)); err != nil {
		return 0, err
	}
	// The lap: the keys after start, then (wrapped) the keys up to start.
	start := s.sweep.load()
	after, wrapped := start, false
	n := 0
	for n < limit {
		if err := s.ready(ctx); err != nil {
			return n, err
		}
		var until []byte
		if wrapped {
			until = start
		}
		stale, last, done, err := s.staleTokens(after, until, before, min(limit-n, tokenPage))
		if err != nil {
			return n, err
		}
		if len(stale) > 0 {
			d, err := s.deleteTokens(ctx, stale)
			n += d
			if err != nil {
				return n, err
			}
		}
		if last != nil {
			after = last
			s.sweep.store(last)
		}
		if !done {
			continue
		}
		if wrapped || start == nil {
			break // once round
		}
		after, wrapped = nil, true
	}
	return n, nil
}

// staleTokens reads a page of the tokens bucket in a read transaction:
// from the key after after (nil: the first) to until (nil: the last), at
// most tokenPage records, stopping once it found want purgeable ones. It
// returns those with their values, the last key it read (nil if none) and
// whether it reached the end of the range.
func (s *Store) staleTokens(after, until []byte, before time.Time, want int) (stale []staleToken, last []byte, done bool, err error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, nil, false, s.dbErr(err)
	}
	defer tx.Rollback()
	triggers := tx.Bucket(bucketTriggers)
	c := tx.Bucket(bucketTokens).Cursor()
	var k, v []byte
	if after == nil {
		k, v = c.First()
	} else if k, v = c.Seek(after); bytes.Equal(k, after) {
		k, v = c.Next()
	}
	for read := 0; k != nil; k, v = c.Next() {
		if until != nil && bytes.Compare(k, until) > 0 {
			return stale, last, true, nil
		}
		if read == tokenPage || len(stale) == want {
			return stale, last, false, nil
		}
		read++
		last = bytes.Clone(k)
		tk, err := decodeToken(v)
		if err != nil {
			s.reportToken(k, err)
			continue
		}
		if !tk.changed.Before(before) {
			continue
		}
		if tk.id != "" {
			r := triggers.Get([]byte(tk.id))
			if r != nil {
				rec, err := decodeRecord(tk.id, r)
				if err != nil || waitsFor(&rec.t, string(k)) {
					continue // a trigger that does not decode may wait for it
				}
			}
		}
		stale = append(stale, staleToken{key: last, value: bytes.Clone(v)})
	}
	return stale, last, true, nil
}

// deleteTokens deletes the tokens of stale that are still as the page read
// them and that no trigger waits for, in one write, and returns how many it
// deleted.
func (s *Store) deleteTokens(ctx context.Context, stale []staleToken) (int, error) {
	var n int
	err := s.write(ctx, func(w *writeTx) error {
		n = 0
		for _, st := range stale {
			if v := w.b.tokens.Get(st.key); !bytes.Equal(v, st.value) {
				continue // changed or deleted since the read
			}
			tk, err := decodeToken(st.value)
			if err != nil {
				continue // it decoded when read
			}
			if tk.id != "" {
				r, err := w.get(tk.id)
				if err != nil || (r != nil && waitsFor(&r.t, string(st.key))) {
					continue
				}
			}
			w.check(w.b.tokens.Delete(st.key))
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// reportToken logs a token record that does not decode, once per key
// (among the keys of reportCorrupt, under a prefix no trigger ID has).
func (s *Store) reportToken(key []byte, err error) {
	s.reportOnce("\x00token\x00"+string(key), "boltstore: keeping a wait token record that does not decode; a Resume of its key fails with ErrCorrupt",
		slog.String("wait_key", string(key)), slog.Any("error", err))
}

// upgradeTokens rewrites the token values of a file of format version 5,
// which have no time, as version 6 values changed at now (the time of the
// upgrade): the tokens no trigger waits for are purged one retention after
// the upgrade. A value that does not decode as version 5 is left as it is
// (a Resume of its key fails with ErrCorrupt, as before). It runs in the
// transaction that opens the file, and writes every token once.
func upgradeTokens(tx *bbolt.Tx, now time.Time) error {
	b := tx.Bucket(bucketTokens)
	if b == nil {
		return nil
	}
	now = now.Round(0).UTC()
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		tk, ok := decodeTokenV5(v)
		if !ok {
			continue
		}
		tk.changed = now
		key := bytes.Clone(k)
		if err := b.Put(key, appendToken(nil, &tk)); err != nil {
			return err
		}
		c.Seek(key) // a write may move the cursor: put it back on key
	}
	return nil
}

// decodeTokenV5 decodes a token value of format version 5: its state byte,
// the bound trigger's ID (a uvarint length then the bytes) and the payload
// to the end.
func decodeTokenV5(v []byte) (tokenRec, bool) {
	if len(v) < 2 || v[0] < tokenEarly || v[0] > tokenDelivered {
		return tokenRec{}, false
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n > uint64(len(v)-1-k) {
		return tokenRec{}, false
	}
	tk := tokenRec{state: v[0], id: string(v[1+k : 1+k+int(n)])}
	if rest := v[1+k+int(n):]; len(rest) > 0 {
		tk.payload = bytes.Clone(rest)
	}
	return tk, true
}
