package trigger

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestReadyQueueOrder pushes and pops jobs at random and checks that every
// pop returns the first job by priority, boost and due time.
func TestReadyQueueOrder(t *testing.T) {
	order := func(a, b job) int {
		return cmp.Or(cmp.Compare(b.priority, a.priority), -cmpBool(a.boost, b.boost), cmp.Compare(a.due, b.due))
	}
	var q readyQueue
	var model []job
	for i := range 20000 {
		if len(model) > 0 && rand.IntN(3) == 0 {
			got := q.pop()
			if order(got, model[0]) != 0 {
				t.Fatalf("pop %d: got %+v, want %+v", i, got, model[0])
			}
			// Jobs that tie may come in any order.
			k := slices.IndexFunc(model, func(j job) bool { return j.id == got.id })
			if k < 0 || order(model[k], model[0]) != 0 {
				t.Fatalf("pop %d: %q was never pushed, or popped twice", i, got.id)
			}
			model = slices.Delete(model, k, k+1)
			continue
		}
		j := job{entry: entry{id: strconv.Itoa(i), priority: int16(rand.IntN(5) - 2), boost: rand.IntN(4) == 0}, due: rand.Int64N(100)}
		if rand.IntN(50) == 0 {
			j.priority = int16(MinPriority + rand.IntN(2)*(MaxPriority-MinPriority))
		}
		q.push(j)
		k, _ := slices.BinarySearchFunc(model, j, order)
		model = slices.Insert(model, k, j)
		if q.len() != len(model) {
			t.Fatalf("len %d, want %d", q.len(), len(model))
		}
	}
	for len(model) > 0 {
		if got := q.pop(); order(got, model[0]) != 0 {
			t.Fatalf("draining: got %+v, want %+v", got, model[0])
		}
		model = model[1:]
	}
	if q.len() != 0 || q.jobs != nil {
		t.Fatalf("drained queue: len %d, %d job slots kept", q.len(), len(q.jobs))
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
