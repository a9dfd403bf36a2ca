// Command bench is `make bench`: it starts the test bed's private Dovecot,
// seeds a deterministic realistic account, and measures mailark's fetch and
// restore side by side with the raw protocol limit and with the peer tools
// (mbsync, mpop, OfflineIMAP, getmail6), at 0 ms and 20 ms added round-trip
// time. The table goes to stdout and to bench/results.md.
//
// Absolute times on a shared machine are noise; the ratios, taken from runs
// interleaved in the same process, are the figures that count.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

// passwordEnv carries the account password to the raw clients, which run
// as child processes like everything measured.
const passwordEnv = "BENCH_PASSWORD"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "raw-imap", "raw-pop3":
			os.Exit(rawMain(os.Args[1], os.Args[2:]))
		}
	}
	os.Exit(benchMain())
}

// rawMain runs one raw client: ARGS = ADDR USER SINK, password from the
// environment, result as JSON on stdout.
func rawMain(which string, args []string) int {
	if len(args) != 3 {
		fmt.Fprintf(os.Stderr, "usage: bench %s ADDR USER none|maildir:DIR|mbox:DIR\n", which)
		return 2
	}
	sink, err := newSink(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fetch := rawIMAPFetch
	if which == "raw-pop3" {
		fetch = rawPOP3Fetch
	}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		// For looking into the raw limit itself: go tool pprof PATH.
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	res, err := fetch(args[0], args[1], os.Getenv(passwordEnv), sink)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", which, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

type options struct {
	root    string
	work    string
	results string
	reps    int
	slow    bool
	getmail bool
	latency time.Duration
	only    string
	serve   bool
	keep    bool
}

func benchMain() (code int) {
	var o options
	flag.StringVar(&o.root, "root", ".", "repository root (where cmd/mailark is)")
	flag.StringVar(&o.work, "work", "bench/work", "scratch directory (corpus, archives, peer state)")
	flag.StringVar(&o.results, "results", "bench/results.md", "where the results table is written")
	flag.IntVar(&o.reps, "reps", 5, "runs of each program per scenario (median reported); ratios on a shared machine move 20-30% between runs, and medians of 5 hold steadier than of 3")
	flag.BoolVar(&o.slow, "slow-peers", true, "also measure OfflineIMAP (about a minute per run)")
	flag.BoolVar(&o.getmail, "getmail", false, "also measure getmail6 (its deliveries stall for minutes here; see the notes in the results)")
	flag.DurationVar(&o.latency, "rtt", 20*time.Millisecond, "added round-trip time for the latency scenarios")
	flag.BoolVar(&o.keep, "keep", false, "keep the archives and peers' output in WORK/out after the run (several GB)")
	flag.BoolVar(&o.serve, "serve", false, "seed the accounts, print where they are, and wait for ^C (for profiling by hand)")
	flag.StringVar(&o.only, "only", "", "comma-separated words: run only the groups whose title contains one (for development)")
	flag.Parse()

	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, err := filepath.Abs(o.work)
	if err != nil {
		logf("bench: %v", err)
		return 1
	}
	o.work = work
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		logf("bench: %v", err)
		return 1
	}
	if !o.keep {
		// Only the generated corpus is worth keeping between runs.
		defer os.RemoveAll(filepath.Join(o.work, "out"))
	}
	tb := newBenchTB(ctx, o.work, logf)
	defer tb.runCleanups()
	defer func() {
		if r := recover(); r != nil {
			abort, ok := r.(tbAbort)
			if !ok {
				panic(r)
			}
			logf("bench: %s", abort.msg)
			code = 1
		}
	}()

	b, err := setup(ctx, tb, o, logf)
	if err != nil {
		logf("bench: %v", err)
		return 1
	}
	if o.serve {
		b.printServe()
		<-ctx.Done()
		return 0
	}
	if err := b.runAll(ctx); err != nil {
		logf("bench: %v", err)
		code = 1
	}
	b.elapsed = time.Since(start)
	report := b.report()
	fmt.Println(report)
	if err := os.WriteFile(o.results, []byte(report), 0o644); err != nil {
		logf("bench: writing %s: %v", o.results, err)
		return 1
	}
	logf("results written to %s", o.results)
	return code
}
