package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// toolKind says what a variant stands for in the ratios.
type toolKind int

const (
	kindMailark toolKind = iota
	kindPeer
	kindRaw
)

// variant is one program measured in a group: mailark, a peer or a raw
// limit. Prepare runs untimed before each run (wipe the destination,
// create a fresh target user); Command builds the timed child; Check runs
// untimed after it and proves the run did the work (message counts).
type variant struct {
	Name    string
	Kind    toolKind
	Note    string // shown under the table (e.g. "FSync yes (default)")
	Prepare func(rep int) error
	Command func(rep int) *exec.Cmd
	Check   func(rep int, output string) error
	// Unavailable, when set, skips the variant with this reason.
	Unavailable string
	// MaxReps, when positive, caps this variant's runs below the group's
	// (a slow reference peer that would otherwise dominate the bench time).
	MaxReps int

	runs []runResult
}

// runResult is one timed run of a child process.
type runResult struct {
	Wall   time.Duration
	MaxRSS int64 // KiB, from wait4's rusage
	Err    error
	Output string // the child's stdout and stderr (first 64 KiB)
}

// group is a set of variants measured interleaved: rep 1 of each in turn,
// then rep 2 of each, and so on (ABAB...), so that drift of the shared
// machine hits all of them alike.
type group struct {
	Title     string
	Reps      int
	BeforeRep func(rep int) error // untimed, once per rep before any variant
	Variants  []*variant
}

// childTimeout bounds any single measured run.
const childTimeout = 5 * time.Minute

func (g *group) run(ctx context.Context, logf func(string, ...any)) error {
	for rep := 0; rep < g.Reps; rep++ {
		if g.BeforeRep != nil {
			if err := g.BeforeRep(rep); err != nil {
				return fmt.Errorf("%s: preparing rep %d: %w", g.Title, rep+1, err)
			}
		}
		for _, v := range g.Variants {
			if v.Unavailable != "" || (v.MaxReps > 0 && rep >= v.MaxReps) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			r := v.runOnce(ctx, rep)
			if v.Kind == kindMailark && r.Err != nil && strings.Contains(r.Output, "not available in this build") {
				// A command the CLI declares but does not implement yet.
				v.Unavailable = "not available yet: " + firstLine(r.Output)
				logf("  %-44s %s", g.Title+" / "+v.Name, v.Unavailable)
				continue
			}
			v.runs = append(v.runs, r)
			status := "ok"
			if r.Err != nil {
				status = "FAILED: " + r.Err.Error()
			}
			logf("  %-44s rep %d  %7.3f s  %6.1f MB RSS  %s", g.Title+" / "+v.Name, rep+1,
				r.Wall.Seconds(), float64(r.MaxRSS)/1024, status)
		}
	}
	return nil
}

// afterSync, when set, runs between that sync and every measured run.
var afterSync func()

func (v *variant) runOnce(ctx context.Context, rep int) runResult {
	if v.Prepare != nil {
		if err := v.Prepare(rep); err != nil {
			return runResult{Err: fmt.Errorf("prepare: %w", err)}
		}
	}
	// Flush what earlier runs left dirty so their writeback is not billed
	// to this run.
	syscall.Sync()
	if afterSync != nil {
		afterSync()
	}
	cmd := v.Command(rep)
	r := timeChild(ctx, cmd)
	if r.Err == nil && v.Check != nil {
		if err := v.Check(rep, r.Output); err != nil {
			r.Err = fmt.Errorf("check: %w", err)
		}
	}
	return r
}

// timeChild runs cmd to completion and returns its wall time and peak RSS.
//
// cmd is started through the launcher (bench/measure), a small process that resets its own peak RSS, starts cmd, and reports cmd's wall
// time and wait4 ru_maxrss on fd 3. The indirection matters: Linux starts a
// child on its parent's memory (vfork) and carries the parent's peak RSS
// into the child's ru_maxrss, so a child started by the bench itself (which
// holds proxy buffers) would report the bench's peak, not its own. Through
// the launcher the floor is the launcher's few MB.
func timeChild(ctx context.Context, cmd *exec.Cmd) runResult {
	launcher := exec.Command(launcherPath, append([]string{"--", cmd.Path}, cmd.Args[1:]...)...)
	launcher.Env, launcher.Dir = cmd.Env, cmd.Dir
	var out bytes.Buffer
	launcher.Stdout = &limitedBuffer{buf: &out, max: 64 << 10}
	launcher.Stderr = launcher.Stdout
	launcher.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cmd.SysProcAttr != nil {
		// The launcher runs as the program's user so the program does too.
		launcher.SysProcAttr.Credential = cmd.SysProcAttr.Credential
	}
	report, reportW, err := os.Pipe()
	if err != nil {
		return runResult{Err: err}
	}
	defer report.Close()
	launcher.ExtraFiles = []*os.File{reportW}
	ctx, cancel := context.WithTimeout(ctx, childTimeout)
	defer cancel()
	if err := launcher.Start(); err != nil {
		reportW.Close()
		return runResult{Err: err}
	}
	reportW.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- launcher.Wait() }()
	select {
	case err = <-waitErr:
	case <-ctx.Done():
		syscall.Kill(-launcher.Process.Pid, syscall.SIGKILL) // launcher and child
		err = fmt.Errorf("killed after %s: %w", childTimeout, <-waitErr)
	}
	var m measurement
	if jerr := json.NewDecoder(report).Decode(&m); jerr != nil && err == nil {
		err = fmt.Errorf("launcher sent no measurement: %w", jerr)
	}
	r := runResult{Wall: time.Duration(m.WallNS), MaxRSS: m.MaxRSSKB, Output: out.String()}
	if err != nil {
		r.Err = fmt.Errorf("%w: %s", err, lastLines(out.String(), 3))
	}
	return r
}

// launcherPath is the small "measure" program (bench/measure), built at
// start-up; selfPath is this executable (the raw clients).
var (
	launcherPath string
	selfPath, _  = os.Executable()
)

// measurement is what the launcher reports on fd 3.
type measurement struct {
	WallNS   int64 `json:"wall_ns"`
	MaxRSSKB int64 `json:"maxrss_kb"`
}

// limitedBuffer keeps the first max bytes of a child's output.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// stats summarises the successful runs of a variant.
type stats struct {
	OK        int
	Failed    int
	Median    time.Duration
	PeakRSSKB int64
	FirstErr  error
}

func (v *variant) stats() stats {
	var s stats
	var walls []time.Duration
	for _, r := range v.runs {
		if r.Err != nil {
			s.Failed++
			if s.FirstErr == nil {
				s.FirstErr = r.Err
			}
			continue
		}
		s.OK++
		walls = append(walls, r.Wall)
		s.PeakRSSKB = max(s.PeakRSSKB, r.MaxRSS)
	}
	if len(walls) > 0 {
		slices.Sort(walls)
		s.Median = walls[len(walls)/2]
		if len(walls)%2 == 0 {
			s.Median = (walls[len(walls)/2-1] + walls[len(walls)/2]) / 2
		}
	}
	return s
}

// usable reports whether the variant has a median to compare.
func (v *variant) usable() bool { return v.Unavailable == "" && v.stats().OK > 0 }
