//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Labels the DockerRunner puts on its containers; Restore finds leftovers
// by LabelTriggerID.
const (
	LabelTriggerID = "triggerkit.trigger-id"
	LabelRun       = "triggerkit.run"
)

// DockerRunner runs each trigger as a container: `docker run` in the
// foreground (RunArgs), named run-<id>-<attempt>, labeled with the trigger's
// ID, limited to the preset's CPUs and memory (with no swap, so that
// exceeding it is an OOM kill), with the run's variables in its
// environment and an init process as PID 1 (so the command gets signals
// and its SIGKILL is reported as status 137). The client's output is the
// container's.
//
// An exit status of 137 is checked with docker inspect: OOMError.Confirmed
// says whether the kernel's OOM killer did it. Delete kills the client and
// removes the container (docker rm --force); Restore removes every
// container labeled with the trigger's ID.
//
// The zero DockerRunner is ready to use. It needs a reachable docker
// daemon, and the images, at run time only.
type DockerRunner struct {
	// Binary is the docker client. Defaults to "docker", looked up in PATH.
	Binary string
}

var _ Runner = (*DockerRunner)(nil)

func (d *DockerRunner) binary() string {
	if d.Binary != "" {
		return d.Binary
	}
	return "docker"
}

// RunArgs returns the arguments of the docker run command of run (after
// the binary's name).
func (d *DockerRunner) RunArgs(run Run) []string {
	args := []string{
		"run",
		"--name", run.Name,
		"--label", LabelTriggerID + "=" + run.TriggerID,
		"--label", LabelRun + "=" + run.Name,
		"--init",
	}
	if m := run.Machine; m.CPUs > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(m.CPUs, 'f', -1, 64))
	}
	if m := run.Machine; m.Memory > 0 {
		mem := strconv.FormatInt(m.Memory, 10)
		args = append(args, "--memory", mem, "--memory-swap", mem)
	}
	for _, kv := range run.Env {
		args = append(args, "--env", kv)
	}
	args = append(args, run.Spec.Image)
	return append(args, run.Spec.Command...)
}

// Create starts docker run in the foreground.
func (d *DockerRunner) Create(ctx context.Context, run Run) (Instance, error) {
	if run.Spec.Image == "" {
		return nil, fmt.Errorf("%w: the docker runner needs a Spec.Image", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	argv := append([]string{d.binary()}, d.RunArgs(run)...)
	p, err := startProcess(argv, os.Environ(), run.Stdout, run.Stderr)
	if err != nil {
		return nil, err
	}
	return &container{process: p, docker: d, name: run.Name}, nil
}

// Restore removes every container of the trigger, running or not.
func (d *DockerRunner) Restore(ctx context.Context, run Run) error {
	out, err := d.run(ctx, "ps", "--all", "--quiet", "--filter", "label="+LabelTriggerID+"="+run.TriggerID)
	if err != nil {
		return err
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil
	}
	_, err = d.run(ctx, append([]string{"rm", "--force"}, ids...)...)
	return err
}

// run runs a docker command and returns its stdout; its stderr goes into
// the error.
func (d *DockerRunner) run(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.binary(), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("docker %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// container is a docker run client and the container it runs.
type container struct {
	*process // the client
	docker   *DockerRunner
	name     string

	waitOnce sync.Once
	exit     Exit
	err      error
}

// Wait waits for the client, which exits with the container's status, and
// asks docker whether a 137 was the OOM killer.
func (c *container) Wait() (Exit, error) {
	c.waitOnce.Do(func() {
		c.exit, c.err = c.process.Wait()
		if c.err == nil && c.exit.Signal == 0 && c.exit.Killed() {
			ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			out, err := c.docker.run(ctx, "inspect", "--format", "{{.State.OOMKilled}}", c.name)
			c.exit.OOMKilled = err == nil && strings.TrimSpace(string(out)) == "true"
		}
	})
	return c.exit, c.err
}

// Delete kills the client and removes the container, which a killed client
// leaves running.
func (c *container) Delete(ctx context.Context) error {
	if err := c.process.Delete(ctx); err != nil {
		return err
	}
	c.Wait() // not removing the container under a running inspect
	_, err := c.docker.run(ctx, "rm", "--force", c.name)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil
	}
	return err
}
