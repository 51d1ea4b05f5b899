package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
)

// TestSlotReuse removes a trigger and saves another, which takes the freed
// slot: the old ID must find nothing, the new one its own trigger, and every
// structure of the store must agree.
func TestSlotReuse(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, remove := range []struct {
		name string
		fn   func(*Store, string) error
	}{
		{"delete", func(s *Store, id string) error { return s.Delete(ctx, id) }},
		{"purge", func(s *Store, id string) error {
			tr, err := s.Claim(ctx, id, trigger.Claim{Owner: "w", Now: t0, Until: t0.Add(time.Minute)})
			if err != nil {
				return err
			}
			if err := s.Finish(ctx, id, tr.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: t0}); err != nil {
				return err
			}
			if n, err := s.Purge(ctx, trigger.PurgeQuery{State: trigger.StateCompleted, Before: t0.Add(time.Second), Limit: 10}); n != 1 {
				return errors.Join(errors.New("purge deleted nothing"), err)
			}
			return nil
		}},
	} {
		t.Run(remove.name, func(t *testing.T) {
			t.Parallel()
			s := New()
			save := func(id string, due time.Time, priority int, payload trigger.Payload) loc {
				t.Helper()
				if err := s.Save(ctx, t0, trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: due, Priority: priority, Payload: payload}); err != nil {
					t.Fatal(err)
				}
				sh, i, _, _ := s.find(id)
				return loc{sh.num, i}
			}
			// The new trigger's ID hashes to the old one's shard.
			newID := "new"
			for j := 0; shardOf(s.hash(newID)) != shardOf(s.hash("old")); j++ {
				newID = fmt.Sprintf("new%d", j)
			}
			freed := save("old", t0, 5, trigger.Payload{"k": "old"})
			save("other", t0, 0, nil)
			if err := remove.fn(s, "old"); err != nil {
				t.Fatal(err)
			}
			if i := save(newID, t0.Add(time.Second), -5, trigger.Payload{"k": "new"}); i != freed {
				t.Fatalf("the new trigger took slot %v, not the freed slot %v", i, freed)
			}
			if _, err := s.Get(ctx, "old"); !errors.Is(err, trigger.ErrNotFound) {
				t.Fatalf("Get of the removed trigger: %v, want ErrNotFound", err)
			}
			if _, err := s.Claim(ctx, "old", trigger.Claim{Owner: "w", Now: t0, Until: t0.Add(time.Minute), Force: true}); !errors.Is(err, trigger.ErrNotFound) {
				t.Fatalf("Claim of the removed trigger: %v, want ErrNotFound", err)
			}
			got, err := s.Get(ctx, newID)
			if err != nil || got.ID != newID || got.Priority != -5 || got.Payload["k"] != "new" || got.Token != 0 {
				t.Fatalf("Get(new) = %+v, %v", got, err)
			}
			refs, err := s.Due(ctx, trigger.DueQuery{Now: t0, Until: t0.Add(time.Hour), Limit: 10})
			if ids := refIDs(refs); err != nil || !slices.Equal(ids, []string{"other", newID}) {
				t.Fatalf("Due = %v, %v; want [other %s]", ids, err, newID)
			}
			if err := s.check(); err != nil {
				t.Fatal(err)
			}
			// The old ID is free again, and gets a slot of its own.
			if i := save("old", t0, 0, nil); i == freed {
				t.Fatal("two triggers share a slot")
			}
			if err := s.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBatchRollback fails a batch on its last trigger: the slots taken for
// the others are freed, and the next saves reuse them.
func TestBatchRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New()
	tr := func(id string) trigger.Trigger { return trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: t0} }
	if err := s.Save(ctx, t0, tr("taken")); err != nil {
		t.Fatal(err)
	}
	err := s.SaveBatch(ctx, t0, []trigger.Trigger{tr("a"), tr("b"), tr("taken")})
	if !errors.Is(err, trigger.ErrDuplicate) {
		t.Fatalf("SaveBatch with a taken ID: %v, want ErrDuplicate", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, trigger.ErrNotFound) {
			t.Fatalf("Get(%s) after a failed batch: %v", id, err)
		}
	}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	used := func() (n uint32) {
		for i := range s.shards {
			n += s.shards[i].recs.used
		}
		return n
	}
	before := used()
	// The same IDs go to the same shards, where their slots are free.
	if err := s.SaveBatch(ctx, t0, []trigger.Trigger{tr("a"), tr("b")}); err != nil {
		t.Fatal(err)
	}
	if after := used(); after != before {
		t.Fatalf("the slabs grew from %d to %d slots with free slots to reuse", before, after)
	}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
}

func refIDs(refs []trigger.Ref) []string {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return ids
}

// TestSaveAllocs saves plain triggers: a Save allocates nothing of its own,
// only the store's growth (a chunk every 1024 records of a shard, index nodes, the ID
// map's tables) when it comes.
func TestSaveAllocs(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New()
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%05d", i)
	}
	i := 0
	allocs := testing.AllocsPerRun(len(ids)-1, func() {
		if err := s.Save(ctx, t0, trigger.Trigger{ID: ids[i], Type: trigger.TypeNext, DueAt: t0.Add(time.Duration(i*7919%10_000) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("a Save allocates %v times", allocs)
	}
}
