package main

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// benchTB lets the bench, an ordinary program, use internal/testbed, which
// is written for tests. It implements the testing.TB methods the test bed
// calls; the embedded nil interface only satisfies TB's unexported method,
// so a call to anything not implemented here panics loudly instead of
// being silently ignored.
type benchTB struct {
	testing.TB
	logf     func(format string, args ...any)
	cleanups []func()
	failed   bool
	ctx      context.Context
	tempRoot string
}

// tbAbort is panicked by Fatal/Skip so the bench's main can run the
// cleanups (stop Dovecot) and exit with the message.
type tbAbort struct{ msg string }

func newBenchTB(ctx context.Context, tempRoot string, logf func(string, ...any)) *benchTB {
	return &benchTB{logf: logf, ctx: ctx, tempRoot: tempRoot}
}

func (b *benchTB) Helper()                           {}
func (b *benchTB) Name() string                      { return "bench" }
func (b *benchTB) Context() context.Context          { return b.ctx }
func (b *benchTB) Cleanup(f func())                  { b.cleanups = append(b.cleanups, f) }
func (b *benchTB) Log(args ...any)                   { b.logf("testbed: %s", fmt.Sprint(args...)) }
func (b *benchTB) Logf(format string, args ...any)   { b.logf(format, args...) }
func (b *benchTB) Fail()                             { b.failed = true }
func (b *benchTB) Failed() bool                      { return b.failed }
func (b *benchTB) Skipped() bool                     { return false }
func (b *benchTB) FailNow()                          { b.failed = true; panic(tbAbort{"testbed failed"}) }
func (b *benchTB) SkipNow()                          { panic(tbAbort{"testbed unavailable"}) }
func (b *benchTB) Error(args ...any)                 { b.Fail(); b.Log(args...) }
func (b *benchTB) Errorf(format string, args ...any) { b.Fail(); b.Logf(format, args...) }
func (b *benchTB) Fatal(args ...any)                 { b.Fail(); panic(tbAbort{fmt.Sprint(args...)}) }
func (b *benchTB) Fatalf(format string, args ...any) {
	b.Fail()
	panic(tbAbort{fmt.Sprintf(format, args...)})
}
func (b *benchTB) Skip(args ...any) { panic(tbAbort{"testbed unavailable: " + fmt.Sprint(args...)}) }
func (b *benchTB) Skipf(format string, args ...any) {
	panic(tbAbort{"testbed unavailable: " + fmt.Sprintf(format, args...)})
}

func (b *benchTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	b.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

func (b *benchTB) TempDir() string {
	dir, err := os.MkdirTemp(b.tempRoot, "tb-")
	if err != nil {
		b.Fatalf("TempDir: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runCleanups runs the registered cleanups, last first, as testing does.
func (b *benchTB) runCleanups() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}
