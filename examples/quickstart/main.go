// Command quickstart schedules a few triggers of different kinds, prints
// each as it runs, and exits once all have run.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		fmt.Printf("%5dms  %-6s %-12s attempt %d  payload %v\n",
			time.Since(start).Milliseconds(), t.Type, t.NodeID, t.Attempt, t.Payload)
		switch {
		case t.NodeID == "flaky" && t.Attempt < 3:
			return errors.New("not yet") // retried with backoff
		case t.NodeID == "first-step":
			// Complete, and schedule the next step in the same store write.
			return trigger.Complete(trigger.Trigger{NodeID: "second-step", DueAt: time.Now().Add(100 * time.Millisecond)})
		}
		wg.Done()
		return nil
	})

	store := memstore.New()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s, err := trigger.New(store, consumer, trigger.Config{RetryBase: 100 * time.Millisecond, Logger: logger})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	defer s.Stop(ctx)

	now := time.Now()
	triggers := []trigger.Trigger{
		{Type: trigger.TypeTimer, NodeID: "hello", DueAt: now.Add(200 * time.Millisecond), Payload: trigger.Payload{"to": "world"}},
		{Type: trigger.TypeNext, NodeID: "first-step", DueAt: now.Add(300 * time.Millisecond)},
		{Type: trigger.TypeTimer, NodeID: "flaky", DueAt: now.Add(400 * time.Millisecond)},
		{ID: "approve-order-42", Type: trigger.TypeManual, NodeID: "approval"},
	}
	wg.Add(len(triggers)) // first-step finishes through second-step
	for _, t := range triggers {
		if _, err := s.Schedule(ctx, t); err != nil {
			return err
		}
	}
	time.Sleep(600 * time.Millisecond)
	if err := s.Fire(ctx, "approve-order-42"); err != nil { // a person approved
		return err
	}
	wg.Wait()
	fmt.Println("all triggers ran")
	return s.Stop(ctx)
}
