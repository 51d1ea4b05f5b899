// Command quickstart schedules a few triggers of different kinds on a bbolt
// file, prints each as it runs, and exits once all have run.
//
//	go run ./examples/quickstart              # a new file in a temporary directory
//	go run ./examples/quickstart -db app.db   # a file of your own, kept afterwards
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	path := flag.String("db", "", "bbolt file (default: a new file in a temporary directory)")
	flag.Parse()
	if *path == "" {
		dir, err := os.MkdirTemp("", "quickstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*path = filepath.Join(dir, "triggers.db")
	}
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

	// Every Schedule below returns once the trigger is on disk: kill the
	// process at any moment and the next start runs what is left.
	store, err := boltstore.Open(*path, nil)
	if err != nil {
		return err
	}
	defer store.Close()
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
		{Type: trigger.TypeManual, NodeID: "approval"},
	}
	wg.Add(len(triggers)) // first-step finishes through second-step
	var approval string
	for _, t := range triggers {
		id, err := s.Schedule(ctx, t)
		if err != nil {
			return err
		}
		if t.Type == trigger.TypeManual {
			approval = id
		}
	}
	time.Sleep(600 * time.Millisecond)
	if err := s.Fire(ctx, approval); err != nil { // a person approved
		return err
	}
	wg.Wait()
	if err := s.Stop(ctx); err != nil {
		return err
	}
	fmt.Println("all triggers ran")
	return nil
}
