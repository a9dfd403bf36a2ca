package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/cli/termbar"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/progress"
)

// outputFlags decide what a run shows and where.
type outputFlags struct {
	Progress string // auto | always | never
	Quiet    bool
	JSON     bool
	Verbose  bool
	LogFile  string
}

func (o *outputFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Progress, "progress", "auto", "progress bar: auto (only when stderr is a terminal), always or never")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing on success (errors still go to stderr)")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per job on stdout, then a summary object")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "trace the protocol on stderr (passwords and tokens redacted)")
	f.StringVar(&o.LogFile, "log-file", "", "append a log of the run to `FILE` (opened anew each run, so logrotate can move it)")
}

func (o *outputFlags) check() error {
	switch o.Progress {
	case "auto", "always", "never":
		return nil
	}
	return mailerr.E(mailerr.ErrUsage, nil, "--progress %q: use auto, always or never", o.Progress)
}

// session is one invocation's output: stdout for results, stderr (the
// console) for bars, warnings and traces, and the optional log file.
//
// Without a terminal on stderr and without --json, a successful run writes
// nothing at all: cron mails any output, so silence means success.
type session struct {
	stdout      io.Writer
	console     *termbar.Console
	out         outputFlags
	interactive bool   // stderr is a terminal
	narrate     bool   // summaries whatever the terminal (demo)
	indent      string // before each summary line (demo)
	logger      *slog.Logger
	logFile     *os.File

	// outMu keeps one job's report (JSON object, plan, summary lines)
	// together on stdout when jobs end at the same time.
	outMu sync.Mutex
	json  *json.Encoder
}

func newSession(env *Env, out outputFlags) (*session, error) {
	if err := out.check(); err != nil {
		return nil, err
	}
	s := &session{
		stdout:      env.Stdout,
		console:     termbar.NewConsole(env.Stderr),
		out:         out,
		interactive: env.StderrIsTerminal,
	}
	if out.JSON {
		s.json = json.NewEncoder(env.Stdout)
	}
	var handlers []slog.Handler
	if out.LogFile != "" {
		// O_APPEND per run: logrotate may move the file between runs
		// and the next run starts a new one.
		f, err := os.OpenFile(expandHome(out.LogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, mailerr.E(mailerr.ErrUsage, err, "cannot open --log-file")
		}
		s.logFile = f
		level := slog.LevelInfo
		if out.Verbose {
			level = slog.LevelDebug
		}
		handlers = append(handlers, slog.NewTextHandler(f, &slog.HandlerOptions{Level: level}))
	}
	if !out.Quiet {
		handlers = append(handlers, &warnHandler{console: s.console})
	}
	s.logger = slog.New(slog.NewMultiHandler(handlers...))
	return s, nil
}

// Close flushes and closes the log file.
func (s *session) Close() error {
	if s.logFile == nil {
		return nil
	}
	err := s.logFile.Close()
	s.logFile = nil
	return err
}

// showBars: a bar on stderr only for a person watching, unless forced.
// --verbose traces share stderr, so auto mode leaves the bar out.
func (s *session) showBars() bool {
	switch s.out.Progress {
	case "always":
		return true
	case "never":
		return false
	}
	return s.interactive && !s.out.Verbose && !s.out.Quiet
}

// newDisplay returns a bar display, or nil when no bar is shown.
func (s *session) newDisplay() *termbar.Display {
	if !s.showBars() {
		return nil
	}
	return termbar.NewDisplay(s.console, func(label, msg string) {
		s.logger.Warn(msg, "job", label)
	})
}

// reporter is the progress.Reporter for one account: a bar view when a
// display is shown, otherwise none. Without a bar there is nothing to add
// to warnings: the core logs every warning it reports through the job's
// logger, which prints it once on stderr (and in the log file).
func (s *session) reporter(d *termbar.Display, label string) progress.Reporter {
	if d != nil {
		return d.Reporter(label)
	}
	return progress.Discard
}

// summary prints a human line on stdout for a person at a terminal.
func (s *session) summary(format string, args ...any) {
	if !(s.interactive || s.narrate) || s.out.Quiet || s.out.JSON {
		return
	}
	s.console.ClearLine()
	fmt.Fprintf(s.stdout, s.indent+format+"\n", args...)
}

// printf prints results the user asked for (ls, --dry-run plans, verify
// differences) whatever the terminal; --json replaces them.
func (s *session) printf(format string, args ...any) {
	if s.out.JSON {
		return
	}
	fmt.Fprintf(s.stdout, format, args...)
}

// emit writes one JSON object per line (--json). Callers serialise:
// report holds outMu; final summaries are written after every job ended.
func (s *session) emit(v any) {
	if s.json == nil {
		return
	}
	_ = s.json.Encode(v)
}

// errorLine prints an error that does not end the run (one job of many).
func (s *session) errorLine(format string, args ...any) {
	s.console.Println("mailark: " + oneLine(fmt.Sprintf(format, args...)))
}

// trace is the --verbose protocol trace for one account, or nil. The
// protocol packages redact credentials before writing.
func (s *session) trace(label string) account.TraceWriter {
	if !s.out.Verbose {
		return nil
	}
	return &prefixWriter{console: s.console, prefix: label + " "}
}

// prefixWriter writes whole lines to the console, each prefixed with the
// account, so traces of parallel connections stay readable. It always
// reports the full length written: a short count would break the
// connection whose bytes are being traced.
type prefixWriter struct {
	mu      sync.Mutex
	console *termbar.Console
	prefix  string
	partial []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	w.partial = append(w.partial, p...)
	for {
		i := strings.IndexByte(string(w.partial), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.partial[:i]), "\r")
		w.partial = w.partial[i+1:]
		w.console.Println(w.prefix + line)
	}
	if len(w.partial) > 4096 {
		w.partial = w.partial[:0]
	}
	return n, nil
}

// warnHandler prints warnings (and errors) from the core's logger as
// single lines on stderr: "mailark: JOB: warning: MESSAGE key=value".
type warnHandler struct {
	console *termbar.Console
	attrs   []slog.Attr
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	var job string
	var extra []string
	add := func(a slog.Attr) bool {
		if a.Key == "job" {
			job = a.Value.String()
		} else {
			extra = append(extra, a.Key+"="+a.Value.String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	var b strings.Builder
	b.WriteString("mailark: ")
	if job != "" {
		b.WriteString(job + ": ")
	}
	if r.Level >= slog.LevelError {
		b.WriteString("error: ")
	} else {
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	h.console.Println(oneLine(b.String()))
	return nil
}

func (h *warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &warnHandler{console: h.console, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

// Groups add nothing to a one-line warning.
func (h *warnHandler) WithGroup(string) slog.Handler { return h }

// oneLine folds a multi-line message into one line for stderr and logs.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r\n", "; ")
	return strings.ReplaceAll(s, "\n", "; ")
}

// humanBytes is 1.5 MiB style.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanDuration rounds for the summary line.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
