// Command chain is a chain executor driven only by triggers: a small
// workflow graph with a start node, a conditional branch on the payload, a
// sub-flow with its own instance and a parent, a manual approval step
// resumed with user input, and an end node. Every step rebuilds the chain's
// state from the trigger's state-instance ID, runs one node, and hands the
// next node back to the scheduler as a follow-up or a wait. It runs on the
// bbolt store in a temporary directory, prints the path it took and exits.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

func main() {
	dir, err := os.MkdirTemp("", "chain-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path, err := run(context.Background(), dir, 250)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Join(path, " -> "))
}

// run starts the chain for an order of amount and returns the path it took
// once the end node ran.
func run(ctx context.Context, dir string, amount float64) ([]string, error) {
	store, err := boltstore.Open(filepath.Join(dir, "chain.db"), nil)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	c := &chain{states: map[string]*state{}, done: make(chan []string, 1)}
	s, err := trigger.New(store, c, trigger.Config{})
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	defer s.Stop(ctx)

	const instance = "order-1"
	if _, err := s.Schedule(ctx, trigger.Trigger{InstanceID: instance, NodeID: "start", DueAt: time.Now(),
		Payload: trigger.Payload{"amount": amount}}); err != nil {
		return nil, err
	}
	// The approver answers, perhaps before the chain reaches the step: a
	// resume that comes first is kept and ends the wait as it starts.
	if _, err := s.Resume(ctx, "approve-"+instance, trigger.Payload{"approved": true, "by": "alice"}); err != nil {
		return nil, err
	}
	select {
	case path := <-c.done:
		return path, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("the chain did not end")
	}
}

// state is the chain state of one instance: the memory the payloads merge
// into and the path so far. A real executor keeps it in a database keyed by
// the instance ID; here it is a map.
type state struct {
	memory trigger.Payload
	path   []string
}

// chain is the consumer: one node per trigger.
type chain struct {
	mu     sync.Mutex
	states map[string]*state
	done   chan []string
}

// load rebuilds the state of an instance and merges the trigger's payload
// into its memory.
func (c *chain) load(t *trigger.Trigger) *state {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[t.InstanceID]
	if st == nil {
		st = &state{}
		c.states[t.InstanceID] = st
	}
	st.memory = trigger.MergePayload(st.memory, t.Payload)
	return st
}

func (c *chain) step(st *state, s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st.path = append(st.path, s)
}

// next is the follow-up that runs node over edge in the same instance.
func next(node, edge string) trigger.Trigger {
	return trigger.Trigger{NodeID: node, EdgeID: edge, DueAt: time.Now()}
}

func (c *chain) Consume(ctx context.Context, t *trigger.Trigger) error {
	st := c.load(t)
	wait, resumed := trigger.WaitResultFrom(ctx)
	switch t.NodeID {
	case "start":
		c.step(st, "start")
		if amount, _ := st.memory["amount"].(float64); amount > 100 {
			return trigger.Complete(next("review", "large"))
		}
		return trigger.Complete(next("end", "small"))
	case "review":
		if !resumed {
			// A sub-flow in its own instance, whose parent is this one.
			c.step(st, "review")
			return trigger.WaitChildren(trigger.Trigger{NodeID: "risk-check", DueAt: time.Now(), Payload: st.memory})
		}
		for _, child := range wait.Children {
			if child.State != trigger.StateCompleted {
				return trigger.Fail(fmt.Errorf("sub-flow %s: %s", child.InstanceID, child.LastError))
			}
		}
		var sub []string
		for _, child := range wait.Children {
			sub = append(sub, c.load(&child).path...)
		}
		c.step(st, fmt.Sprintf("review(sub-flow: %s)", strings.Join(sub, ", ")))
		// The approval step waits for a person: no due time, a key to
		// resume it by.
		return trigger.Complete(trigger.Trigger{Type: trigger.TypeManual, NodeID: "approval", EdgeID: "review-done",
			WaitKey: "approve-" + t.InstanceID})
	case "risk-check":
		c.step(st, "risk-check")
		if t.ParentInstanceID == "" || t.InstanceID == t.ParentInstanceID {
			return trigger.Fail(fmt.Errorf("risk-check runs in a sub-flow instance"))
		}
		return trigger.Complete()
	case "approval":
		if st.memory["approved"] != true {
			return trigger.Fail(fmt.Errorf("not approved"))
		}
		c.step(st, fmt.Sprintf("approval(by %s)", st.memory["by"]))
		return trigger.Complete(next("end", "approved"))
	case "end":
		c.step(st, "end via "+t.EdgeID)
		c.mu.Lock()
		path := slices.Clone(st.path)
		c.mu.Unlock()
		c.done <- path
		return nil
	}
	return trigger.Fail(fmt.Errorf("unknown node %q", t.NodeID))
}
