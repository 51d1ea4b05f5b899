// Command cron runs recurring jobs in a single binary on a bbolt file, for a
// few seconds, and exits. Run it twice on the same file: the second run
// registers the same jobs (which changes nothing), catches up what was
// missed in between as each job's misfire policy says, and no occurrence
// runs twice.
//
//	go run ./examples/cron -db cron.db          # first run
//	go run ./examples/cron -db cron.db          # again: nothing repeated
//	go run ./examples/cron -db cron.db -for 10s
//
// The jobs write each occurrence they run to a ledger bucket in the same
// bbolt file (the store keeps its own buckets there, see boltstore.Wrap),
// keyed by job and scheduled time. A consumer of an at-least-once scheduler
// must be idempotent: finding its occurrence in the ledger already, it
// would skip it and count a repeat. The summary prints the count; it is 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	_ "time/tzdata" // CRON_TZ zones, whatever the machine has

	"go.etcd.io/bbolt"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// jobs are what every start registers: Register is idempotent, so this is
// the whole deployment story for recurring jobs.
var jobs = []trigger.Trigger{
	// Every two seconds; after a downtime, every missed occurrence runs
	// (at most Config.MisfireCap of them, the newest).
	{ID: "report", Cron: "*/2 * * * * *", Misfire: trigger.MisfireFireAll, Payload: trigger.Payload{"to": "ops@example.com"}},
	// Every three seconds on Berlin's clock; missed occurrences are skipped.
	{ID: "cleanup", Cron: "CRON_TZ=Europe/Berlin */3 * * * * *", Misfire: trigger.MisfireSkip},
	// Every second from registration; after a downtime, one catch-up run.
	{ID: "heartbeat", Cron: "@every 1s", Misfire: trigger.MisfireFireOnce},
}

var ledgerBucket = []byte("example.ledger")

func run(ctx context.Context, args []string, out io.Writer) error {
	flags := flag.NewFlagSet("cron", flag.ContinueOnError)
	path := flags.String("db", filepath.Join(os.TempDir(), "triggerkit-cron-example.db"), "bbolt file, kept between runs")
	runFor := flags.Duration("for", 5*time.Second, "how long to run before stopping")
	if err := flags.Parse(args); err != nil {
		return err
	}

	db, err := bbolt.Open(*path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", *path, err)
	}
	defer db.Close()
	store, err := boltstore.Wrap(db, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	runNo, err := countRun(db)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %d on %s\n", runNo, *path)

	var mu sync.Mutex
	ran, repeated := 0, 0
	consumer := trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		occ, ok := trigger.OccurrenceFromContext(ctx)
		if !ok {
			return nil // fired by hand: stands for no occurrence
		}
		key := t.ID + " " + occ.Scheduled.UTC().Format(time.RFC3339Nano)
		fresh := false
		err := db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(ledgerBucket)
			if b.Get([]byte(key)) != nil {
				return nil // already done: an idempotent consumer skips it
			}
			fresh = true
			return b.Put([]byte(key), []byte(strconv.Itoa(runNo)))
		})
		if err != nil {
			return err // retried with backoff
		}
		how := "on time"
		if occ.CatchUp {
			how = "catch-up"
		}
		if !fresh {
			how = "REPEATED, skipped"
		}
		mu.Lock()
		defer mu.Unlock()
		ran++
		if !fresh {
			repeated++
		}
		fmt.Fprintf(out, "  %s  %-9s  stands for %s  %s\n", time.Now().Format("15:04:05.000"), t.ID, occ.Scheduled.Format("15:04:05"), how)
		return nil
	})

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s, err := trigger.New(store, consumer, trigger.Config{
		Workers:      4,
		ScanInterval: time.Second,
		MisfireGrace: 500 * time.Millisecond,
		MisfireCap:   3,
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		res, err := s.Register(ctx, j)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  registered %-9s %-36q %s\n", j.ID, j.Cron, res)
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	time.Sleep(*runFor)
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		return err
	}

	recurring, err := s.Recurring(ctx)
	if err != nil {
		return err
	}
	for _, t := range recurring {
		fmt.Fprintf(out, "  next %-9s at %s (occurrences so far: %d)\n", t.ID, t.DueAt.Local().Format("15:04:05"), t.Iteration)
	}
	total, err := ledgerSize(db)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %d: %d occurrences run, %d repeated; the ledger holds %d occurrences of %d runs\n", runNo, ran, repeated, total, runNo)
	if repeated > 0 {
		return errors.New("an occurrence ran twice")
	}
	return nil
}

// countRun creates the ledger and counts this run in it.
func countRun(db *bbolt.DB) (int, error) {
	n := 0
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(ledgerBucket)
		if err != nil {
			return err
		}
		n, _ = strconv.Atoi(string(b.Get([]byte("#runs"))))
		n++
		return b.Put([]byte("#runs"), []byte(strconv.Itoa(n)))
	})
	return n, err
}

func ledgerSize(db *bbolt.DB) (int, error) {
	n := 0
	err := db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(ledgerBucket).Stats().KeyN - 1 // without #runs
		return nil
	})
	return n, err
}
