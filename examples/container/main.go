//go:build unix

// Command container runs shell scripts as triggers through a container
// executor (executor.go): one process or container per trigger, on the
// trigger's machine preset, with a timeout, its output captured, OOM kills
// recognised and escalated to a larger preset, and everything cleaned up.
//
//	go run ./examples/container           # local processes (sh -c)
//	go run ./examples/container -docker   # docker run alpine; needs a docker daemon
//
// It schedules four triggers on a bbolt file in a temporary directory: one
// that succeeds and prints its output, one that times out, one killed by
// SIGKILL on the largest preset (reported as out of memory, and failed),
// and one killed on the small and medium presets that succeeds on the
// large one. It prints each run, then the stored outcome of each trigger,
// and exits.
//
// The executor is meant to be copied into a program of your own; the
// package is main only because it is an example.
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
	"strings"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/boltstore"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// presets is a ladder: an OOM kill on small runs again on medium, then on
// large.
var presets = []Preset{
	{Name: "small", CPUs: 0.5, Memory: 256 << 20, Next: "medium"},
	{Name: "medium", CPUs: 1, Memory: 512 << 20, Next: "large"},
	{Name: "large", CPUs: 2, Memory: 1 << 30},
}

// command runs the trigger's payload "script" with sh -c, with the
// payload's "timeout" if it has one.
func command(t *trigger.Trigger) (Spec, error) {
	script, ok := t.Payload["script"].(string)
	if !ok {
		return Spec{}, errors.New(`the payload has no "script"`)
	}
	spec := Spec{Image: *image, Command: []string{"sh", "-c", script}}
	if s, ok := t.Payload["timeout"].(string); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return Spec{}, err
		}
		spec.Timeout = d
	}
	return spec, nil
}

var (
	useDocker = flag.Bool("docker", false, "run containers with docker instead of local processes")
	image     = flag.String("image", "alpine:3.20", "the image of -docker runs")
)

func run() error {
	flag.Parse()
	dir, err := os.MkdirTemp("", "container-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var runner Runner = &ProcessRunner{Dir: filepath.Join(dir, "runs")}
	if *useDocker {
		runner = &DockerRunner{}
	}
	quiet := slog.New(slog.DiscardHandler) // this program prints what happens itself
	executor, err := NewExecutor(Config{
		Runner:   runner,
		Command:  command,
		Presets:  presets,
		Timeout:  time.Minute,
		OnResult: report,
		Logger:   quiet,
	})
	if err != nil {
		return err
	}

	ctx := context.Background()
	store, err := boltstore.Open(filepath.Join(dir, "triggers.db"), nil)
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := trigger.New(store, executor, trigger.Config{RetryBase: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	defer s.Stop(ctx)

	triggers := []trigger.Trigger{
		{ID: "hello", Payload: trigger.Payload{
			"script": `echo "hello from $TRIGGER_RUN_ID on $TRIGGER_MACHINE ($TRIGGER_CPUS CPU, $TRIGGER_MEMORY bytes)"; echo "and a line on stderr" >&2`,
		}},
		{ID: "slow", MaxAttempts: 1, Payload: trigger.Payload{
			"script":  `echo "working..."; sleep 30 & wait`,
			"timeout": "300ms",
		}},
		{ID: "oom", Machine: "large", Payload: trigger.Payload{
			"script": `echo "allocating more than there is" >&2; kill -9 $$`,
		}},
		{ID: "grow", Machine: "small", Payload: trigger.Payload{
			"script": `[ "$TRIGGER_MACHINE" = large ] || { echo "$TRIGGER_MEMORY bytes is not enough" >&2; kill -9 $$; }; echo "fits in $TRIGGER_MEMORY bytes"`,
		}},
	}
	for _, t := range triggers {
		t.DueAt = time.Now()
		if _, err := s.Schedule(ctx, t); err != nil {
			return err
		}
	}

	// Wait until every trigger is final, as the store says.
	deadline := time.Now().Add(30 * time.Second)
	var final []trigger.Trigger
	for len(final) < len(triggers) {
		if time.Now().After(deadline) {
			return errors.New("the triggers did not finish within 30s")
		}
		time.Sleep(20 * time.Millisecond)
		final = final[:0]
		for _, t := range triggers {
			got, err := s.Get(ctx, t.ID)
			if err != nil {
				return err
			}
			if got.State.Final() {
				final = append(final, got)
			}
		}
	}
	if err := s.Stop(ctx); err != nil {
		return err
	}

	fmt.Println("\nstored outcomes:")
	for _, t := range final {
		machine := t.Machine
		if m, ok := t.Payload[PayloadMachine].(string); ok {
			machine = m // escalated
		}
		if machine == "" {
			machine = presets[0].Name // the default
		}
		lastError, _, _ := strings.Cut(t.LastError, "\n")
		fmt.Printf("  %-6s %-10s on %-7s %s\n", t.ID, t.State, machine, lastError)
	}
	return nil
}

// report prints every run as it ends, and leaves the outcome as the
// executor chose it.
func report(ctx context.Context, t *trigger.Trigger, r *Result, outcome error) error {
	fmt.Printf("%s on %s, %v:\n", r.Name, r.Machine.Name, r.Duration.Round(time.Millisecond))
	var oom *OOMError
	var timeout *TimeoutError
	switch {
	case r.Err == nil:
		fmt.Printf("  succeeded\n")
	case errors.As(r.Err, &oom) && r.Machine.Next != "":
		fmt.Printf("  killed by SIGKILL (out of memory?); running again on %s\n", r.Machine.Next)
	case errors.As(r.Err, &oom):
		fmt.Printf("  killed by SIGKILL (out of memory?) on the largest preset; failed\n")
	case errors.As(r.Err, &timeout):
		fmt.Printf("  timed out after %v; process group killed\n", timeout.Timeout)
	default:
		fmt.Printf("  failed: %v\n", r.Err)
	}
	for _, stream := range []struct {
		name string
		out  []byte
	}{{"stdout", r.Stdout}, {"stderr", r.Stderr}} {
		for line := range strings.Lines(string(stream.out)) {
			fmt.Printf("  %s| %s\n", stream.name, strings.TrimSuffix(line, "\n"))
		}
	}
	return outcome
}
