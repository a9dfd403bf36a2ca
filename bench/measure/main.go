// Command measure runs a program and reports its wall time and peak RSS
// (wait4's ru_maxrss, KiB) as JSON on file descriptor 3. The bench starts
// every measured program through it.
//
// It exists because Linux starts a child on its parent's memory (vfork)
// and carries the parent's peak RSS into the child's ru_maxrss: a program
// started directly by the bench, which holds proxy buffers, would report
// the bench's peak instead of its own. This launcher is tiny, resets its
// own peak before starting the program, and so sets a floor of about 2 MB.
//
// Usage: measure -- PROGRAM [ARGS...]; it exits with the program's code.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

type measurement struct {
	WallNS   int64 `json:"wall_ns"`
	MaxRSSKB int64 `json:"maxrss_kb"`
}

func main() {
	args := os.Args[1:]
	if len(args) < 2 || args[0] != "--" {
		fmt.Fprintln(os.Stderr, "usage: measure -- PROGRAM [ARGS...]")
		os.Exit(2)
	}
	report := os.NewFile(3, "report")
	syscall.CloseOnExec(3) // the program must not hold the report pipe
	// Reset the peak RSS to the current RSS (proc(5), clear_refs "5").
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	m := measurement{WallNS: int64(time.Since(start))}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSSKB = ru.Maxrss
		}
	}
	if report != nil {
		json.NewEncoder(report).Encode(m)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(max(ee.ExitCode(), 1))
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
