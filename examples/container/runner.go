//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner creates, restores and deletes runs: the executor's lifecycle over
// some way of running a command (local processes, docker). Implementations
// must be safe for concurrent use.
type Runner interface {
	// Create starts run and returns once it is running. It writes the run's
	// output to run.Stdout and run.Stderr. A spec the runner cannot run
	// fails with an error wrapping ErrInvalid.
	Create(ctx context.Context, run Run) (Instance, error)
	// Restore finds whatever earlier runs of run.TriggerID left behind
	// (after a crash of their scheduler, for instance) and removes it,
	// killing what still runs. Finding nothing is not an error.
	Restore(ctx context.Context, run Run) error
}

// Instance is a run that Create started.
type Instance interface {
	// Wait blocks until the run has ended and its output has been written,
	// and returns how it ended. Calling it again returns the same.
	Wait() (Exit, error)
	// Delete kills the run if it still goes (its whole process group, or
	// its container), waits until it has ended and removes what it left.
	// It may be called at any time, more than once, and concurrently with
	// Wait.
	Delete(ctx context.Context) error
}

// Run describes one run for a Runner.
type Run struct {
	// Name is run-<id>-<attempt> (RunName).
	Name      string
	TriggerID string
	Attempt   int
	// Machine is the preset: its limits apply to the run. Zero means no
	// limits.
	Machine Preset
	Spec    Spec
	// Env is Spec.Env followed by the run's variables (EnvRunID and the
	// others); a later value wins over an earlier one of the same name.
	Env []string
	// Stdout and Stderr receive the run's output; nil discards it.
	Stdout, Stderr io.Writer
}

// ProcessRunner runs Spec.Command as a local process, in a process group of
// its own so that a timeout, a cancellation or a delete kills everything it
// started. It does not enforce the preset's limits (use the DockerRunner,
// or a cgroup, for that); the run sees them in EnvCPUs and EnvMemory.
//
// For Restore, it keeps a pid file per live run in Dir, naming the process
// group and its leader's start time (from /proc on Linux), so a later
// attempt can kill what a crashed one left without killing a process that
// got the same number since. Where there is no /proc the pid file is
// trusted as it is.
//
// The zero ProcessRunner is ready to use.
type ProcessRunner struct {
	// Dir holds the pid files of live runs. Defaults to
	// $TMPDIR/triggerkit-container. Runners whose triggers may be each
	// other's recoveries must share it.
	Dir string
}

var _ Runner = (*ProcessRunner)(nil)

func (r *ProcessRunner) dir() string {
	if r.Dir != "" {
		return r.Dir
	}
	return filepath.Join(os.TempDir(), "triggerkit-container")
}

// pidRecord is the content of a pid file.
type pidRecord struct {
	TriggerID string `json:"trigger_id"`
	Run       string `json:"run"`
	PGID      int    `json:"pgid"`
	// Start is the leader's start time in clock ticks after boot, from
	// /proc/<pid>/stat; empty where there is no /proc.
	Start string `json:"start,omitempty"`
}

// Create starts Spec.Command and records it in a pid file.
func (r *ProcessRunner) Create(ctx context.Context, run Run) (Instance, error) {
	if len(run.Spec.Command) == 0 {
		return nil, fmt.Errorf("%w: the process runner needs a Spec.Command", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := r.dir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := startProcess(run.Spec.Command, append(os.Environ(), run.Env...), run.Stdout, run.Stderr)
	if err != nil {
		return nil, err
	}
	rec := pidRecord{TriggerID: run.TriggerID, Run: run.Name, PGID: p.pgid}
	rec.Start, _ = procStart(p.pgid) // empty where there is no /proc
	path := filepath.Join(dir, run.Name+".pid")
	if err := writeFileAtomic(path, rec); err != nil {
		// Without its pid file a crash would leave it unfindable: do not run.
		p.Delete(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	p.pidFile = path
	return p, nil
}

// Restore kills the process groups that earlier runs of the trigger left
// and removes their pid files.
func (r *ProcessRunner) Restore(ctx context.Context, run Run) error {
	dir := r.dir()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	prefix := "run-" + nameID(run.TriggerID) + "-"
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		// run-<id>-<attempt>.pid, and not the file of an ID that merely
		// starts with this one ("a" and "a-1").
		attempt, ok := strings.CutSuffix(rest, ".pid")
		if _, err := strconv.Atoi(attempt); !ok || err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(dir, e.Name())
		var rec pidRecord
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
			continue
		}
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if rec.TriggerID != run.TriggerID {
			continue
		}
		if err := killLeftover(rec); err != nil {
			errs = append(errs, fmt.Errorf("kill %s (process group %d): %w", rec.Run, rec.PGID, err))
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killLeftover kills the process group of rec, if it is still the one rec
// describes.
func killLeftover(rec pidRecord) error {
	if rec.PGID <= 1 { // kill(0) and kill(-1) would hit far more than a run
		return fmt.Errorf("bad process group %d", rec.PGID)
	}
	start, err := procStart(rec.PGID)
	switch {
	case err == nil:
		if rec.Start != "" && start != rec.Start {
			return nil // the leader died and its number went to another process
		}
	case errors.Is(err, fs.ErrNotExist):
		// The leader is gone (or there is no /proc). Processes left in its
		// group keep the group's number from being reused, so the group,
		// if any, is still the run's.
	default:
		return err
	}
	if err := syscall.Kill(-rec.PGID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// procStart returns the start time of process pid as /proc/<pid>/stat has
// it, if pid leads its process group (an error wrapping fs.ErrNotExist
// otherwise, or where there is no /proc).
func procStart(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// pid (comm) state ppid pgrp ... starttime is field 22; comm may hold
	// spaces and parentheses, so count from the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if f[2] != strconv.Itoa(pid) { // pgrp: not a group leader
		return "", fmt.Errorf("process %d leads no process group: %w", pid, fs.ErrNotExist)
	}
	return f[19], nil
}

func writeFileAtomic(path string, rec pidRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// process is a started command in its own process group.
type process struct {
	cmd     *exec.Cmd
	pgid    int
	readers []*os.File
	copied  chan struct{} // closed when both streams are copied out
	pidFile string        // removed by Delete; empty if none

	mu sync.Mutex
	// reaped is set once the leader has been waited for: from then on the
	// group's number may be reused by an unrelated process group, once the
	// group is empty.
	reaped bool

	waitOnce sync.Once
	exit     Exit
	err      error
}

// outputGrace bounds the wait for the output pipes to close after the
// group was killed: a process that left the group (setsid) may hold them.
const outputGrace = 2 * time.Second

func startProcess(argv, env []string, stdout, stderr io.Writer) (*process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Pipes of our own rather than exec's, so that Wait can kill what the
	// leader left in its group before waiting for the output to end.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &process{cmd: cmd, pgid: cmd.Process.Pid, readers: []*os.File{outR, errR}, copied: make(chan struct{})}
	var wg sync.WaitGroup
	for i, w := range []io.Writer{stdout, stderr} {
		if w == nil {
			w = io.Discard
		}
		r := p.readers[i]
		wg.Go(func() { io.Copy(w, r) })
	}
	go func() {
		wg.Wait()
		close(p.copied)
	}()
	return p, nil
}

// Wait waits for the leader to exit, kills what it left in its group (a
// run ends with its main process, as a container does), and waits for the
// output.
func (p *process) Wait() (Exit, error) {
	p.waitOnce.Do(func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.reaped = true
		// Stragglers keep the group's number from being reused, so this
		// reaches them or, if there are none, nothing, except in the
		// microseconds before this line if the pid space wrapped around
		// and a new process made itself leader of a group with the
		// number. Killing before reaping would need waitid(WNOWAIT), which
		// the standard library does not offer.
		syscall.Kill(-p.pgid, syscall.SIGKILL)
		p.mu.Unlock()

		grace := time.NewTimer(outputGrace)
		select {
		case <-p.copied:
		case <-grace.C:
			for _, r := range p.readers {
				r.Close() // ends the copies
			}
			<-p.copied
		}
		grace.Stop()
		for _, r := range p.readers {
			r.Close()
		}

		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			p.err = err
			return
		}
		st := p.cmd.ProcessState
		p.exit = Exit{Code: st.ExitCode()}
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.exit.Signal = ws.Signal()
			p.exit.Code = 128 + int(ws.Signal())
		}
	})
	return p.exit, p.err
}

// Delete kills the group if the leader has not been reaped, waits, and
// removes the pid file.
func (p *process) Delete(ctx context.Context) error {
	p.mu.Lock()
	if !p.reaped {
		syscall.Kill(-p.pgid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	// Prompt, as the group was sent SIGKILL, unless a process hangs in the
	// kernel; then the goroutine ends when it does.
	done := make(chan struct{})
	go func() {
		p.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("process group %d did not end: %w", p.pgid, ctx.Err())
	}
	if p.pidFile != "" {
		if err := os.Remove(p.pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
