package boltstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/triggerkit/trigger"
)

// The benchmarks write to a real file with fsync on (the durability being
// measured). Run them with, for example:
//
//	go test -run='^$' -bench=. -benchtime=100000x ./store/boltstore/
//
// IDs are version 7 UUIDs, like the scheduler's.

// parallel runs op(0) ... op(b.N-1) on the given number of goroutines and
// reports ops per second under unit.
func parallel(b *testing.B, goroutines int, unit string, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

func benchIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	return ids
}

func benchStore(b *testing.B) *Store {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), &Options{NoSync: os.Getenv("BOLTSTORE_NOSYNC") != ""})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// reportCommits reports how many triggers shared one commit (one fsync),
// and how many pages a commit wrote.
func reportCommits(b *testing.B, s *Store, before uint64) {
	if n := s.commits.Load() - before; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "ops/commit")
		st := s.db.Stats()
		b.ReportMetric(float64(st.TxStats.GetWrite())/float64(n), "writes/commit")
	}
}

func BenchmarkSave(b *testing.B) {
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := benchStore(b)
			ids := benchIDs(b.N)
			ctx := b.Context()
			before := s.commits.Load()
			parallel(b, g, "saves/s", func(i int) error {
				tr := trigger.Trigger{ID: ids[i], Type: trigger.TypeNext, DueAt: t0.Add(time.Duration(i) * time.Millisecond),
					InstanceID: "instance", NodeID: "node", Payload: trigger.Payload{"n": i}}
				return s.Save(ctx, t0, tr)
			})
			reportCommits(b, s, before)
		})
	}
}

// BenchmarkSaveClaimFinish is the life of a trigger: saved, claimed and
// completed.
func BenchmarkSaveClaimFinish(b *testing.B) {
	for _, g := range []int{1, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := benchStore(b)
			ids := benchIDs(b.N)
			ctx := b.Context()
			before := s.commits.Load()
			parallel(b, g, "triggers/s", func(i int) error {
				tr := trigger.Trigger{ID: ids[i], Type: trigger.TypeNext, DueAt: t0,
					InstanceID: "instance", NodeID: "node", Payload: trigger.Payload{"n": i}}
				if err := s.Save(ctx, t0, tr); err != nil {
					return err
				}
				c, err := s.Claim(ctx, ids[i], trigger.Claim{Owner: "bench", Now: t0, Until: t0.Add(time.Minute)})
				if err != nil {
					return err
				}
				return s.Finish(ctx, ids[i], c.Token, trigger.Outcome{Kind: trigger.OutcomeComplete, Now: t0})
			})
			reportCommits(b, s, before)
		})
	}
}

// BenchmarkDue measures the due scan of a store holding many triggers far
// in the future and a few due ones.
func BenchmarkDue(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	ids := benchIDs(100_000)
	for i := 0; i < len(ids); i += 10_000 {
		batch := make([]trigger.Trigger, 0, 10_000)
		for j, id := range ids[i:min(i+10_000, len(ids))] {
			due := t0.Add(24 * time.Hour)
			if (i+j)%1000 == 0 {
				due = t0
			}
			batch = append(batch, trigger.Trigger{ID: id, Type: trigger.TypeNext, DueAt: due})
		}
		if err := s.SaveBatch(ctx, t0, batch); err != nil {
			b.Fatal(err)
		}
	}
	q := trigger.DueQuery{Now: t0, Until: t0.Add(time.Minute), Limit: 1000}
	b.ResetTimer()
	for b.Loop() {
		refs, err := s.Due(ctx, q)
		if err != nil || len(refs) != 100 {
			b.Fatalf("Due: %d refs, %v", len(refs), err)
		}
	}
}
