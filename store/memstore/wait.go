package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/triggerkit/trigger"
)

// Waits: the trigger.WaitStore side of the store.
//
// A wait token has a record from the first time it is seen (a resume, or a
// trigger parking on it) until the trigger bound to it is deleted or
// purged, or PurgeTokens deletes it: that is what makes a second resume a
// no-op that says so. A record carries the time of its last change, which
// PurgeTokens compares with its cutoff. The children of a parent are
// indexed by the parent's ID, so the parent's run reads them without a
// scan.
//
// Each children wait is a batch with a number of its own, from a counter of
// the store (waits.batches): Park gives it to the parent (rare.waitBatch)
// and to each child it creates (rare.batch). A parent can leave a children
// wait before its children end (it is fired, canceled and sent back,
// planned anew by Register, or deleted and saved again under its ID) and
// park on a new batch later; a child of the wait it left must not count in
// the new one, or the parent would resume before its new children ended.
// So a child's end counts only while its parent still waits for the
// child's batch, and Children lists a parent's last batch: the children of
// the wait its run came out of. The number is the store's, not the
// parent's fencing token at the park (which boltstore uses, its tokens
// being the file's): here a trigger's tokens count its own claims, and
// start again for a trigger saved again under the ID of a deleted one,
// whose children may still run. The counter costs nothing more, as Park
// holds every shard.

var _ trigger.WaitStore = (*Store)(nil)

// waits is the wait state of a store. It is guarded by every shard's lock
// at once: a call that reads or changes it holds them all.
type waits struct {
	tokens   map[string]*token
	children map[string][]loc // parent ID -> its children, in no order
	batches  uint64           // the number of the last children wait
}

// token is the record of a wait token.
type token struct {
	state   tokenState
	changed int64  // Unix nanoseconds of its last change: created, bound, delivered
	id      string // the trigger bound to it (waiter or delivered)
	payload string // an early resume's payload, as JSON
}

type tokenState uint8

const (
	tokenEarly     tokenState = iota + 1 // resumed before any trigger waited
	tokenWaiter                          // a trigger waits for it (or did, and its wait ended otherwise)
	tokenDelivered                       // a resume was delivered to the trigger
)

// checkKeys checks, before anything of an insert is written, that the wait
// keys of the waiting triggers among rs are free. The shards of
// lockMask(rs) must be locked: every shard if one of them has a key.
func (s *Store) checkKeys(rs []recordBuf) error {
	var seen map[string]string
	for j := range rs {
		r := &rs[j]
		if r.state != trigger.StateWaiting || r.x == nil || r.x.waitKey == "" {
			continue
		}
		key := r.x.waitKey
		if other, dup := seen[key]; dup {
			return fmt.Errorf("memstore: triggers %q and %q wait for one key %q: %w", other, r.id, key, trigger.ErrDuplicate)
		}
		if seen == nil {
			seen = make(map[string]string)
		}
		seen[key] = r.id
		if tk := s.w.tokens[key]; tk != nil && tk.state != tokenEarly {
			return fmt.Errorf("memstore: trigger %q: wait key %q is taken by trigger %q: %w", r.id, key, tk.id, trigger.ErrDuplicate)
		}
	}
	return nil
}

// bindKey binds the wait key of new record l, if it waits, to it (a stored
// early resume ends its wait at once), and indexes a new child under its
// parent. It runs before the record is attached. The record's shard must be
// locked, and every shard if it is a child or waits for a key.
func (s *Store) bindKey(l loc) {
	sh := &s.shards[l.shard]
	r := sh.recs.at(l.ref)
	if r.x == nil {
		return
	}
	if m := r.x.more; m != nil && m.parentID != "" {
		if s.w.children == nil {
			s.w.children = make(map[string][]loc)
		}
		s.w.children[m.parentID] = append(s.w.children[m.parentID], l)
	}
	if r.state != trigger.StateWaiting || r.x.waitKey == "" {
		return
	}
	r.setWait(trigger.Wait{Kind: trigger.WaitKindToken})
	s.waitOn(sh, r, r.updated)
}

// waitOn binds r's wait key to r, of shard sh, which is about to wait
// (detached); if the key has an early resume, r is resumed at now instead.
// Either way the token changed at now. Every shard must be locked and the
// key checked free.
func (s *Store) waitOn(sh *shard, r record, now int64) {
	key := r.x.waitKey
	if s.w.tokens == nil {
		s.w.tokens = make(map[string]*token)
	}
	tk := s.w.tokens[key]
	switch {
	case tk == nil:
		s.w.tokens[key] = &token{state: tokenWaiter, changed: now, id: r.id}
		return
	case tk.state == tokenEarly:
		sh.recs.setPayload(r, mergeJSON(sh.recs.payload(r), tk.payload))
		*tk = token{state: tokenDelivered, id: r.id}
		r.wake(now, true)
	case tk.state == tokenDelivered: // delivered to r before: its run asks again
		r.wake(now, true)
	}
	tk.changed = now // bound to r again, if it was bound to it already
}

// waitedOn reports whether a trigger waits for the token tk of key: its
// trigger is waiting for key in a token wait not yet resumed, as Resume
// would deliver to it. Every shard must be locked.
func (s *Store) waitedOn(key string, tk *token) bool {
	_, _, _, ok := s.waiter(key, tk)
	return ok
}

// waiter returns the trigger that waits for the token tk of key, as
// waitedOn reports it. Every shard must be locked.
func (s *Store) waiter(key string, tk *token) (*shard, uint32, record, bool) {
	if tk.id == "" {
		return nil, 0, record{}, false
	}
	sh, i, r, ok := s.find(tk.id)
	if !ok || r.state != trigger.StateWaiting || r.x == nil || r.x.waitKey != key {
		return nil, 0, record{}, false
	}
	w := r.wait()
	return sh, i, r, w.Kind == trigger.WaitKindToken && !w.Resumed
}

// wake ends the wait of r (detached): it becomes scheduled at now, with
// Wait.Resumed set if resumed. PlannedAt stays: a wait is part of the run
// that parked (a trigger saved waiting, which has none, is planned at now).
func (r record) wake(now int64, resumed bool) {
	planned := r.plannedAt()
	if planned == noTime {
		planned = now
	}
	r.state, r.due = trigger.StateScheduled, now
	if resumed {
		w := r.wait()
		w.Resumed = true
		r.setWait(w)
	}
	r.setPlanned(planned)
}

// wait returns the Wait of r.
func (r record) wait() trigger.Wait {
	if r.x == nil || r.x.more == nil {
		return trigger.Wait{}
	}
	return r.x.more.wait
}

// setWait sets the Wait of r.
func (r record) setWait(w trigger.Wait) {
	m := r.rare()
	m.wait = w
	r.setRare(m)
}

// mergeJSON merges the payload extra into base, both JSON objects ("" for
// an empty one). Both come from the store's own encoding, so they decode.
func mergeJSON(base, extra string) string {
	if extra == "" {
		return base
	}
	b, _ := decode("", base)
	e, _ := decode("", extra)
	m, _ := encode(trigger.MergePayload(b, e))
	return m
}

// parentShard returns the lock mask of the shard of r's parent if r is a
// child whose end is not counted yet in its parent's wait (see childFinal),
// or 0.
func (s *Store) parentShard(r record) uint32 {
	if p := r.uncountedParent(); p != "" {
		return bit(s.hash(p))
	}
	return 0
}

// uncountedParent returns the ID of r's parent if r is a child whose end is
// not counted yet in its parent's wait, or "".
func (r record) uncountedParent() string {
	if r.x == nil || r.x.more == nil || r.x.more.counted {
		return ""
	}
	return r.x.more.parentID
}

// childFinal counts the end of child r (final, or deleted before) in its
// parent's wait, once, if the parent still waits for r's batch; the last
// one makes the parent due at now. The shards of r and of parentShard(r)
// must be locked.
func (s *Store) childFinal(r record, now int64) {
	parent := r.uncountedParent()
	if parent == "" {
		return
	}
	r.x.more.counted = true
	psh, pi, p, ok := s.find(parent)
	if !ok || p.state != trigger.StateWaiting {
		return
	}
	w := p.wait()
	if w.Kind != trigger.WaitKindChildren || w.Pending == 0 || p.x.more.waitBatch != r.x.more.batch {
		return // the parent left the wait of r's batch: it waits for no child or for others
	}
	w.Pending--
	if w.Pending > 0 {
		p.setWait(w)
		return
	}
	psh.detach(pi)
	p.setWait(w)
	p.wake(now, false)
	p.updated = now
	psh.attach(pi)
}

// forget drops what the wait state holds of record i of shard sh, r, which
// is being removed. Every shard must be locked if r.touchesWaits().
func (s *Store) forget(sh *shard, i uint32, r record) {
	if !r.touchesWaits() {
		return
	}
	if m := r.x.more; m != nil && m.parentID != "" {
		p := m.parentID
		cs := s.w.children[p]
		if j := slices.Index(cs, loc{sh.num, i}); j >= 0 {
			cs[j] = cs[len(cs)-1]
			cs = cs[:len(cs)-1]
		}
		if len(cs) == 0 {
			delete(s.w.children, p)
		} else {
			s.w.children[p] = cs
		}
	}
	if key := r.x.waitKey; key != "" {
		if tk := s.w.tokens[key]; tk != nil && tk.state != tokenEarly && tk.id == r.id {
			delete(s.w.tokens, key)
		}
	}
}

// clearWait forgets the last wait of r (a Reschedule starts afresh).
func (r record) clearWait() {
	if r.wait() != (trigger.Wait{}) {
		r.setWait(trigger.Wait{})
	}
}

// Park ends a run and parks the trigger; see trigger.WaitStore. It holds
// every shard: it binds a wait key, or saves children.
func (s *Store) Park(ctx context.Context, id string, tok uint64, p trigger.Park) (time.Time, error) {
	if id == "" {
		return time.Time{}, errEmptyID
	}
	if err := p.Validate(); err != nil {
		return time.Time{}, fmt.Errorf("memstore: %w", err)
	}
	now, err := stamp(p.Now, "park time")
	if err != nil {
		return time.Time{}, err
	}
	until := int64(noTime)
	if !p.Until.IsZero() {
		if until, err = stamp(p.Until, "wait time"); err != nil {
			return time.Time{}, err
		}
	}
	children, err := s.prepareAll(nil, p.Children, p.Now)
	if err != nil {
		return time.Time{}, err
	}
	for j := range children {
		c := children[j].record()
		m := c.rare()
		m.parentID = id
		c.setRare(m)
	}

	s.lock(allShards)
	defer s.unlock(allShards)
	h := s.hash(id)
	sh := s.shard(h)
	i, r, err := sh.held(id, h, tok)
	if err != nil {
		return time.Time{}, err
	}
	if p.Kind == trigger.WaitKindToken {
		if tk := s.w.tokens[p.Key]; tk != nil && tk.state != tokenEarly && tk.id != id {
			return time.Time{}, fmt.Errorf("memstore: trigger %q: wait key %q is taken by trigger %q: %w", id, p.Key, tk.id, trigger.ErrDuplicate)
		}
	}
	batch := s.w.batches + 1 // numbered under the locks, which guard the counter
	for j := range children {
		children[j].record().x.more.batch = batch // x.more holds the parentID set above
	}
	if err := s.insert(children); err != nil {
		return time.Time{}, err
	}
	if len(children) > 0 {
		s.w.batches = batch
	}
	sh.detach(i)
	planned := r.plannedAt() // a wait keeps PlannedAt, as a retry does
	r.attempt, r.updated = 0, now
	w := trigger.Wait{Kind: p.Kind, Until: p.Until}
	switch p.Kind {
	case trigger.WaitKindTime:
		r.state, r.due = trigger.StateScheduled, until
	case trigger.WaitKindToken:
		r.state, r.due = trigger.StateWaiting, until
	case trigger.WaitKindChildren:
		r.state, r.due = trigger.StateWaiting, noTime
		w.Pending = len(children)
	}
	r.setWait(w)
	if p.Kind == trigger.WaitKindChildren {
		r.x.more.waitBatch = batch // x.more holds the wait just set
	}
	r.setPlanned(planned)
	if p.Kind == trigger.WaitKindToken {
		r.x.waitKey = p.Key // r.x is set: r has a wait
		s.waitOn(sh, r, now)
	}
	sh.attach(i)
	return toTime(r.due), nil
}

// Resume delivers a wait key; see trigger.WaitStore. It holds every shard.
func (s *Store) Resume(ctx context.Context, now time.Time, key string, payload trigger.Payload) (trigger.ResumeResult, string, error) {
	if key == "" {
		return 0, "", invalidf("empty wait key")
	}
	n, err := stamp(now, "now")
	if err != nil {
		return 0, "", err
	}
	p, err := encode(payload)
	if err != nil {
		return 0, "", err
	}
	s.lock(allShards)
	defer s.unlock(allShards)
	tk := s.w.tokens[key]
	switch {
	case tk == nil:
		if s.w.tokens == nil {
			s.w.tokens = make(map[string]*token)
		}
		s.w.tokens[key] = &token{state: tokenEarly, changed: n, payload: p}
		return trigger.ResumeStored, "", nil
	case tk.state != tokenWaiter:
		return trigger.ResumeDuplicate, "", nil
	}
	sh, i, r, ok := s.waiter(key, tk)
	if !ok {
		return trigger.ResumeTooLate, "", nil
	}
	sh.detach(i)
	sh.recs.setPayload(r, mergeJSON(sh.recs.payload(r), p))
	r.wake(n, true)
	r.updated = n
	sh.attach(i)
	tk.state, tk.changed = tokenDelivered, n
	return trigger.ResumeDelivered, r.id, nil
}

// PurgeTokens deletes old token records no trigger waits for; see
// trigger.WaitStore.
//
// Tokens are kept in a map by key, with no index by time: a call walks the
// map, holding every shard, until it has deleted limit tokens, looking at
// each token's time first and at its trigger only for an old token bound
// to one. A call that finds fewer than limit walks the whole map, so a
// scheduler's purge costs a walk of every token (a few nanoseconds each)
// every minute, however few are stale. The walk starts at a random place
// (Go's map order), so the calls of one purge do not look at the same
// kept tokens again and again: they look at about twice the map in all.
func (s *Store) PurgeTokens(ctx context.Context, before time.Time, limit int) (int, error) {
	switch {
	case before.IsZero():
		return 0, invalidf("token purge needs a cutoff time")
	case limit <= 0:
		return 0, invalidf("token purge limit %d must be positive", limit)
	}
	cutoff := clamp(before)
	s.lock(allShards)
	defer s.unlock(allShards)
	n := 0
	for key, tk := range s.w.tokens {
		if n == limit {
			break
		}
		if tk.changed >= cutoff || s.waitedOn(key, tk) {
			continue
		}
		delete(s.w.tokens, key)
		n++
	}
	return n, nil
}

// Children returns the children of a parent's last batch, ordered by ID;
// see trigger.WaitStore. The last batch is the one with the highest
// number: the parent's last children wait, whether or not the parent still
// exists.
func (s *Store) Children(ctx context.Context, parentID string) ([]trigger.Trigger, error) {
	if parentID == "" {
		return nil, errEmptyID
	}
	ts, err := s.read(func() []entry {
		cs := s.w.children[parentID]
		var last uint64
		for _, c := range cs {
			last = max(last, s.shards[c.shard].recs.at(c.ref).x.more.batch)
		}
		var es []entry
		for _, c := range cs {
			sh := &s.shards[c.shard]
			if r := sh.recs.at(c.ref); r.x.more.batch == last {
				es = append(es, entry{sh, r})
			}
		}
		return es
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ts, func(a, b trigger.Trigger) int { return strings.Compare(a.ID, b.ID) })
	return ts, nil
}

// Checkpoint replaces the payload of a running trigger; see
// trigger.WaitStore.
func (s *Store) Checkpoint(ctx context.Context, id string, tok uint64, now time.Time, payload trigger.Payload) error {
	if id == "" {
		return errEmptyID
	}
	n, err := stamp(now, "now")
	if err != nil {
		return err
	}
	p, err := encode(payload)
	if err != nil {
		return err
	}
	h := s.hash(id)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, r, err := sh.held(id, h, tok)
	if err != nil {
		return err
	}
	sh.recs.setPayload(r, p)
	r.updated = n
	return nil
}
