//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/triggerkit/trigger"
)

func TestDockerRunArgs(t *testing.T) {
	t.Parallel()
	d := &DockerRunner{}
	for _, tc := range []struct {
		name string
		run  Run
		want []string
	}{{
		name: "preset and command",
		run: Run{
			Name: "run-abc-2", TriggerID: "abc", Attempt: 2,
			Machine: Preset{Name: "small", CPUs: 0.5, Memory: 256 << 20},
			Spec:    Spec{Image: "alpine:3.20", Command: []string{"sh", "-c", "echo hi"}},
			Env:     []string{"A=1", "TRIGGER_RUN_ID=run-abc-2"},
		},
		want: []string{
			"run", "--name", "run-abc-2",
			"--label", "triggerkit.trigger-id=abc", "--label", "triggerkit.run=run-abc-2",
			"--init",
			"--cpus", "0.5", "--memory", "268435456", "--memory-swap", "268435456",
			"--env", "A=1", "--env", "TRIGGER_RUN_ID=run-abc-2",
			"alpine:3.20", "sh", "-c", "echo hi",
		},
	}, {
		name: "no limits, the image's command",
		run:  Run{Name: "run-x-1", TriggerID: "x", Attempt: 1, Spec: Spec{Image: "busybox"}},
		want: []string{"run", "--name", "run-x-1", "--label", "triggerkit.trigger-id=x", "--label", "triggerkit.run=run-x-1", "--init", "busybox"},
	}} {
		if got := d.RunArgs(tc.run); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// fakeDocker writes a docker client that logs every call and plays the
// daemon: ps finds two containers, inspect says OOMKilled, and run prints a
// line (image img/ok) or exits with 137 (image img/oom). It returns the
// client's path and a function that returns the calls so far.
func fakeDocker(t *testing.T) (string, func() [][]string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := `#!/bin/sh
{ printf '%s\n' "$@"; echo ----; } >> '` + log + `'
case "$1" in
ps) echo c1; echo c2 ;;
inspect) echo true ;;
run)
	for a in "$@"; do
		case "$a" in
		img/ok) echo "hello from the container"; exit 0 ;;
		img/oom) echo "out of memory" >&2; exit 137 ;;
		esac
	done
	exit 125 ;;
esac
`
	bin := filepath.Join(dir, "docker")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, func() [][]string {
		t.Helper()
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var calls [][]string
		for call := range strings.SplitSeq(strings.TrimSuffix(string(data), "----\n"), "----\n") {
			calls = append(calls, strings.Split(strings.TrimSuffix(call, "\n"), "\n"))
		}
		return calls
	}
}

func TestDockerLifecycle(t *testing.T) {
	t.Parallel()
	bin, calls := fakeDocker(t)
	presets := []Preset{{Name: "small", CPUs: 0.5, Memory: 256 << 20, Next: "large"}, {Name: "large", CPUs: 2, Memory: 1 << 30}}
	b := setup(t, Config{
		Runner:  &DockerRunner{Binary: bin},
		Presets: presets,
		Command: func(t *trigger.Trigger) (Spec, error) {
			return Spec{Image: t.Payload["image"].(string), Command: []string{"work"}, Env: []string{"MODE=fast"}}, nil
		},
	})
	ctx := context.Background()

	// A recovered run: restore removes the trigger's containers, then the
	// run is created and deleted.
	r, err := b.consume(t, ctx, trigger.Trigger{ID: "job", Attempt: 3, Token: 7, Recovered: true, Payload: trigger.Payload{"image": "img/ok"}})
	if err != nil || string(r.Stdout) != "hello from the container\n" {
		t.Fatalf("Consume = %v, stdout %q", err, r.Stdout)
	}
	want := [][]string{
		{"ps", "--all", "--quiet", "--filter", "label=triggerkit.trigger-id=job"},
		{"rm", "--force", "c1", "c2"},
		{"run", "--name", "run-job-3",
			"--label", "triggerkit.trigger-id=job", "--label", "triggerkit.run=run-job-3",
			"--init", "--cpus", "0.5", "--memory", "268435456", "--memory-swap", "268435456",
			"--env", "MODE=fast",
			"--env", "TRIGGER_RUN_ID=run-job-3", "--env", "TRIGGER_ID=job", "--env", "TRIGGER_ATTEMPT=3", "--env", "TRIGGER_TOKEN=7",
			"--env", "TRIGGER_MACHINE=small", "--env", "TRIGGER_CPUS=0.5", "--env", "TRIGGER_MEMORY=268435456",
			"img/ok", "work"},
		{"rm", "--force", "run-job-3"},
	}
	if got := calls(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("docker calls:\n got %q\nwant %q", got, want)
	}

	// Status 137 is checked with inspect, which confirms the OOM kill.
	r, err = b.consume(t, ctx, trigger.Trigger{ID: "big", Machine: "large", Payload: trigger.Payload{"image": "img/oom"}})
	var oom *OOMError
	if !errors.As(err, &oom) || !isFail(err) {
		t.Fatalf("Consume = %v, want trigger.Fail(*OOMError)", err)
	}
	if !oom.Confirmed || !r.Exit.OOMKilled || oom.Output != "out of memory" {
		t.Errorf("OOMError = %+v, exit %+v; want a confirmed OOM kill", oom, r.Exit)
	}
	got := calls()[len(want):]
	if len(got) != 3 || got[0][0] != "run" ||
		!slices.Equal(got[1], []string{"inspect", "--format", "{{.State.OOMKilled}}", "run-big-1"}) ||
		!slices.Equal(got[2], []string{"rm", "--force", "run-big-1"}) {
		t.Errorf("docker calls = %q, want run, inspect, rm", got)
	}
}

func TestDockerNeedsAnImage(t *testing.T) {
	t.Parallel()
	_, err := (&DockerRunner{Binary: "/nonexistent/docker"}).Create(context.Background(), Run{Name: "run-x-1", TriggerID: "x"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Create without an image = %v, want ErrInvalid", err)
	}
}
