//go:build unix

package boltstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

// The wait crash test. TestWaitCrash runs the test binary again as a child
// (TestWaitCrashChild) that parks triggers in every kind of wait, stores a
// resume that comes before its waiter, and leaves one run cut off after a
// checkpoint; once all of that is on disk it says so on fd 3 and the parent
// kills it with SIGKILL. The parent then opens the file, checks that every
// wait is there as it was, and runs a scheduler that resumes each one.

const waitCrashEnv = "TRIGGER_WAIT_CRASH_DIR"

// waitCrashN triggers of each kind of wait.
const waitCrashN = 5

func waitCrashConsumer(ctx context.Context, tr *trigger.Trigger) error {
	r, waited := trigger.WaitResultFrom(ctx)
	switch tr.NodeID {
	case "token":
		if !waited {
			if err := trigger.Checkpoint(ctx, trigger.Payload{"step": 1.0}); err != nil {
				return err
			}
			return trigger.WaitFor("tok-"+tr.ID, 0)
		}
	case "time":
		if !waited {
			return trigger.WaitUntil(time.Now().Add(3 * time.Second))
		}
	case "children":
		if !waited {
			return trigger.WaitChildren(
				trigger.Trigger{ID: tr.ID + "-k1", Type: trigger.TypeManual},
				trigger.Trigger{ID: tr.ID + "-k2", Type: trigger.TypeManual},
			)
		}
	case "early":
		if !waited {
			return trigger.WaitFor("early-tok", 0)
		}
	case "checkpoint":
		if tr.Payload["progress"] == nil {
			if err := trigger.Checkpoint(ctx, trigger.Payload{"progress": 5.0}); err != nil {
				return err
			}
			<-ctx.Done() // cut off here by the kill
			return ctx.Err()
		}
		return nil
	}
	if !waited {
		return nil // a child
	}
	if r.Outcome != trigger.WaitResumed {
		return trigger.Fail(fmt.Errorf("wait ended %v", r.Outcome))
	}
	return nil
}

func TestWaitCrashChild(t *testing.T) {
	dir := os.Getenv(waitCrashEnv)
	if dir == "" {
		t.Skip("only run by TestWaitCrash")
	}
	ctx := context.Background()
	store, err := boltstore.Open(filepath.Join(dir, "triggers.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trigger.New(store, trigger.ConsumerFunc(waitCrashConsumer), trigger.Config{ScanInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Resume(ctx, "early-tok", trigger.Payload{"early": true}); err != nil || res != trigger.ResumeStored {
		t.Fatalf("early Resume = %v, %v", res, err)
	}
	now := time.Now()
	for _, kind := range []string{"token", "time", "children"} {
		for i := range waitCrashN {
			if _, err := s.Schedule(ctx, trigger.Trigger{ID: fmt.Sprintf("%s-%d", kind, i), NodeID: kind, DueAt: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Schedule(ctx, trigger.Trigger{ID: "checkpoint", NodeID: "checkpoint", DueAt: now}); err != nil {
		t.Fatal(err)
	}
	// Ready once every trigger is parked and the checkpoint is on disk.
	for {
		parked := 0
		for _, kind := range []string{"token", "time", "children"} {
			for i := range waitCrashN {
				tr, err := s.Get(ctx, fmt.Sprintf("%s-%d", kind, i))
				if err == nil && tr.Wait.Kind != trigger.WaitKindNone {
					parked++
				}
			}
		}
		cp, err := s.Get(ctx, "checkpoint")
		if parked == 3*waitCrashN && err == nil && cp.Payload["progress"] == 5.0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	ready := os.NewFile(3, "ready")
	fmt.Fprintln(ready, "ready")
	ready.Close()
	select {} // until killed
}

func TestWaitCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWaitCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), waitCrashEnv+"="+dir)
	out, err := os.Create(filepath.Join(dir, "child.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b, _ := os.ReadFile(filepath.Join(dir, "child.out"))
		t.Fatalf("child not ready (%q, %v):\n%s", line, err, b)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited by itself")
	}

	// Everything parked is on disk as it was.
	store, err := boltstore.Open(filepath.Join(dir, "triggers.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range waitCrashN {
		tok, err := store.Get(ctx, fmt.Sprint("token-", i))
		if err != nil || tok.State != trigger.StateWaiting || tok.WaitKey != fmt.Sprint("tok-token-", i) || tok.Payload["step"] != 1.0 {
			t.Fatalf("token waiter after the crash: %+v, %v", tok, err)
		}
		tm, err := store.Get(ctx, fmt.Sprint("time-", i))
		if err != nil || tm.State != trigger.StateScheduled || tm.Wait.Kind != trigger.WaitKindTime || !tm.DueAt.Equal(tm.Wait.Until) {
			t.Fatalf("time waiter after the crash: %+v, %v", tm, err)
		}
		p, err := store.Get(ctx, fmt.Sprint("children-", i))
		if err != nil || p.State != trigger.StateWaiting || p.Wait.Pending != 2 {
			t.Fatalf("parent after the crash: %+v, %v", p, err)
		}
		kids, err := store.Children(ctx, p.ID)
		if err != nil || len(kids) != 2 || kids[0].State != trigger.StateWaiting {
			t.Fatalf("children after the crash: %+v, %v", kids, err)
		}
	}

	// A new scheduler resumes every wait.
	var mu sync.Mutex
	results := map[string]trigger.Trigger{}
	consumer := trigger.ConsumerFunc(func(ctx context.Context, tr *trigger.Trigger) error {
		err := waitCrashConsumer(ctx, tr)
		if err == nil {
			mu.Lock()
			results[tr.ID] = *tr
			mu.Unlock()
		}
		return err
	})
	s, err := trigger.New(store, consumer, trigger.Config{ScanInterval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	for i := range waitCrashN {
		if res, err := s.Resume(ctx, fmt.Sprint("tok-token-", i), trigger.Payload{"answer": float64(i)}); err != nil || res != trigger.ResumeDelivered {
			t.Fatalf("Resume after the crash = %v, %v", res, err)
		}
		for _, k := range []string{"-k1", "-k2"} {
			if err := s.Fire(ctx, fmt.Sprint("children-", i)+k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Schedule(ctx, trigger.Trigger{ID: "early", NodeID: "early", DueAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	want := 3*waitCrashN + 2 + 2*waitCrashN // waiters, early and checkpoint, children
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(results)
		mu.Unlock()
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d triggers completed after the restart", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range waitCrashN {
		if tr := results[fmt.Sprint("token-", i)]; tr.Payload["step"] != 1.0 || tr.Payload["answer"] != float64(i) {
			t.Errorf("resumed token waiter's payload %v, want the checkpoint and the resume merged", tr.Payload)
		}
	}
	if tr := results["early"]; tr.Payload["early"] != true {
		t.Errorf("early resume lost in the crash: payload %v", tr.Payload)
	}
	if tr := results["checkpoint"]; tr.Payload["progress"] != 5.0 || !tr.Recovered {
		t.Errorf("run cut off after its checkpoint: payload %v, recovered %v; want the checkpoint, recovered", tr.Payload, tr.Recovered)
	}
	if err := s.Stop(context.Background()); err != nil && !errors.Is(err, trigger.ErrStopped) {
		t.Error(err)
	}
}
