package memstore

import (
	"fmt"
	"slices"

	"github.com/triggerkit/trigger"
)

// check reports the first inconsistency between the store's structures: in
// each shard, the slab and its free list, the ID map, the due index, the
// lists of states and the leases must all name the same records, each in the
// shard its ID hashes to; the children of parents must name them too, and a
// parent waiting for children must count exactly the children of its batch
// whose end is not counted yet.
func (s *Store) check() error {
	s.lock(allShards)
	defer s.unlock(allShards)
	for n := range s.shards {
		if err := s.shards[n].check(s.hash); err != nil {
			return fmt.Errorf("shard %d: %w", n, err)
		}
	}
	children := 0
	for parent, cs := range s.w.children {
		for j, c := range cs {
			if c.shard >= nShards || c.ref >= s.shards[c.shard].recs.used {
				return fmt.Errorf("children of %q: %v is no slot", parent, c)
			}
			if r := s.shards[c.shard].recs.at(c.ref); r.id == "" || r.rare().parentID != parent || slices.Contains(cs[:j], c) {
				return fmt.Errorf("children of %q: %v holds %q", parent, c, r.id)
			}
		}
		if len(cs) == 0 {
			return fmt.Errorf("children of %q: an empty list is kept", parent)
		}
		children += len(cs)
	}
	for n := range s.shards {
		for _, r := range s.shards[n].recs.all() {
			m := r.rare()
			if m.parentID != "" {
				children--
				if m.batch == 0 || m.batch > s.w.batches {
					return fmt.Errorf("child %q: batch %d, of %d numbered", r.id, m.batch, s.w.batches)
				}
			}
			if m.waitBatch > s.w.batches {
				return fmt.Errorf("parent %q: batch %d, of %d numbered", r.id, m.waitBatch, s.w.batches)
			}
			if r.state != trigger.StateWaiting || m.wait.Kind != trigger.WaitKindChildren {
				continue
			}
			pending := 0
			for _, c := range s.w.children[r.id] {
				if cm := s.shards[c.shard].recs.at(c.ref).x.more; cm.batch == m.waitBatch && !cm.counted {
					pending++
				}
			}
			if pending == 0 || m.wait.Pending != pending {
				return fmt.Errorf("parent %q waits for %d children; %d of its batch have not ended", r.id, m.wait.Pending, pending)
			}
		}
	}
	if children != 0 {
		return fmt.Errorf("children lists hold %d refs more than there are children", children)
	}
	return nil
}

// check checks the structures of one shard, whose IDs hash to it with hash.
func (s *shard) check(hash func(string) uint64) error {
	free := make(map[uint32]bool)
	for f := s.recs.free; f != 0; f = s.recs.at(f - 1).slot {
		i := f - 1
		if free[i] || i >= s.recs.used {
			return fmt.Errorf("free list: slot %d twice or past the end", i)
		}
		if r := s.recs.at(i); *r.recPtrs != (recPtrs{}) || *r.recVals != (recVals{slot: r.slot}) {
			return fmt.Errorf("free slot %d is not cleared", i)
		}
		free[i] = true
	}
	live := 0
	for i, r := range s.recs.all() {
		live++
		if free[i] {
			return fmt.Errorf("slot %d is free and holds %q", i, r.id)
		}
		if j, got, _ := s.ids.find(r.id, hash(r.id)); j != i || got != r {
			return fmt.Errorf("ID map: %q finds ref %d, not %d", r.id, j, i)
		}
		if n := shardOf(hash(r.id)); n != s.num {
			return fmt.Errorf("%q is in shard %d, not %d", r.id, s.num, n)
		}
	}
	if live+len(free) != int(s.recs.used) {
		return fmt.Errorf("slab: %d live and %d free slots of %d", live, len(free), s.recs.used)
	}
	full := 0
	for _, x := range s.ids.slots {
		if x != 0 {
			full++
		}
	}
	if full != live || int(s.ids.n) != live {
		return fmt.Errorf("ID map holds %d IDs (counts %d) for %d records", full, s.ids.n, live)
	}

	payloads := make(map[uint32]bool)
	for _, r := range s.recs.all() {
		if p := r.payload; p != 0 {
			if payloads[p-1] || s.recs.payloads[p-1] == "" {
				return fmt.Errorf("payload %d of %q is shared or empty", p-1, r.id)
			}
			payloads[p-1] = true
		}
	}
	for _, p := range s.recs.freePayloads {
		if payloads[p] || s.recs.payloads[p] != "" {
			return fmt.Errorf("free payload %d is in use or not cleared", p)
		}
		payloads[p] = true
	}
	if len(payloads) != len(s.recs.payloads) {
		return fmt.Errorf("%d payloads used or free of %d", len(payloads), len(s.recs.payloads))
	}

	indexed := 0
	var prev *key
	var err error
	s.due.ascend(&key{at: noTime, ref: noRef, priority: 1<<15 - 1}, func(at int64, i uint32) bool {
		r := s.recs.at(i)
		k := r.key(i)
		switch {
		case free[i] || i >= s.recs.used:
			err = fmt.Errorf("due index: entry for free slot %d", i)
		case !r.indexed() || r.due != at:
			err = fmt.Errorf("due index: entry for %q (%s, due %d) at %d", r.id, r.state, r.due, at)
		case prev != nil && prev.compare(&k) >= 0:
			err = fmt.Errorf("due index: %q out of order", r.id)
		}
		prev = &k
		indexed++
		return err == nil
	})
	if err != nil {
		return err
	}
	want := 0
	for _, r := range s.recs.all() {
		if r.indexed() {
			want++
		}
	}
	if indexed != want {
		return fmt.Errorf("due index holds %d entries for %d due records", indexed, want)
	}

	listed := 0
	for st, list := range s.inState {
		for pos, i := range list {
			if r := s.recs.at(i); free[i] || r.state != trigger.State(st) || r.slot != uint32(pos) {
				return fmt.Errorf("list of %s: slot %d (%q, %s) at %d", trigger.State(st), i, r.id, r.state, pos)
			}
		}
		listed += len(list)
	}
	for pos, l := range s.running {
		if r := s.recs.at(l.ref); free[l.ref] || r.state != trigger.StateRunning || r.slot != uint32(pos) {
			return fmt.Errorf("leases: slot %d (%q, %s) at %d", l.ref, r.id, r.state, pos)
		}
	}
	scheduled := 0
	for _, r := range s.recs.all() {
		if r.state == trigger.StateScheduled {
			scheduled++
		}
	}
	if listed+len(s.running)+scheduled != live {
		return fmt.Errorf("%d records listed, %d running and %d scheduled of %d", listed, len(s.running), scheduled, live)
	}

	return nil
}
