// Package e2e drives the real mailark binary against the test bed's Dovecot,
// the fault-injecting proxy and hostile scripted servers: kills at random
// points, network faults, hostile input, full disks and secrets. Each test
// proves one property of the finished program, as a user runs it.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	hostile := 0
	hostileCases.Range(func(any, any) bool { hostile++; return true })
	if n := faultsInjected.Load(); n > 0 || hostile > 0 {
		fmt.Printf("e2e: %d network faults injected, %d hostile server cases\n", n, hostile)
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// mailark builds cmd/mailark once per test binary and returns its path.
func mailark(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mailark-e2e-bin-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "mailark")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/mailark/mailark/cmd/mailark").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mailark: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// result is one finished mailark process.
type result struct {
	args     []string
	stdout   string
	stderr   string
	code     int
	killed   bool          // ended by a signal (our SIGKILL)
	elapsed  time.Duration // wall time
	maxRSSKB int64         // peak resident set size (wait4 rusage)
}

func (r result) String() string {
	return fmt.Sprintf("mailark %s: exit %d after %v\nstdout: %s\nstderr: %s",
		strings.Join(r.args, " "), r.code, r.elapsed.Round(time.Millisecond), clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	if len(s) > 4000 {
		return s[:2000] + "\n...\n" + s[len(s)-2000:]
	}
	return s
}

// invocation is how to start one mailark process.
type invocation struct {
	args []string
	env  []string // added to a clean environment
	// killAfter sends SIGKILL after this long (0: never).
	killAfter time.Duration
	// limit kills the process (and fails the test) when it runs longer:
	// "never hangs" is asserted by every run.
	limit time.Duration
	// onStart, when set, gets the pid as soon as the process runs.
	onStart func(pid int)
}

// baseEnv is a clean environment: no terminal, private HOME and XDG
// directories, nothing from the test process but PATH.
func baseEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_STATE_HOME=" + filepath.Join(home, ".state"),
		"TMPDIR=" + home,
	}
}

// run starts mailark and waits for it.
func run(t testing.TB, home string, inv invocation) result {
	t.Helper()
	if inv.limit == 0 {
		inv.limit = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), inv.limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, mailark(t), inv.args...)
	cmd.Env = append(baseEnv(home), inv.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailark: %v", err)
	}
	if inv.onStart != nil {
		inv.onStart(cmd.Process.Pid)
	}
	var timer *time.Timer
	if inv.killAfter > 0 {
		timer = time.AfterFunc(inv.killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
	}
	err := cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	r := result{args: inv.args, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSKB = ru.Maxrss
	}
	if ctx.Err() != nil {
		t.Fatalf("mailark %s did not finish within %v (hang):\n%s", strings.Join(inv.args, " "), inv.limit, r)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.killed = true
		}
	case err != nil:
		t.Fatalf("run mailark: %v", err)
	}
	return r
}

// mustRun runs mailark and fails the test unless it exits 0.
func mustRun(t testing.TB, home string, inv invocation) result {
	t.Helper()
	r := run(t, home, inv)
	if r.code != 0 || r.killed {
		t.Fatalf("want exit 0:\n%s", r)
	}
	return r
}

// requireCI fails instead of skipping under CI=true, where every part of
// the suite must run.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (required under CI=true)", reason)
	}
	t.Skip(reason)
}
