// Package cli is mailark's command layer: cobra commands, flags, the TOML
// config of `mailark run`, output (quiet success, summary lines, --json,
// progress bars, log file), retries and exit codes. The work itself is done
// by the archive, fetch and restore packages behind the Engine interface.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailark/mailark/internal/mailerr"
)

// Env is what a run of mailark sees of the outside world. Tests fill it
// in; main uses StdEnv.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// StderrIsTerminal: progress bars and summary lines are for a person
	// watching; under cron a successful run prints nothing.
	StderrIsTerminal bool
	Version          string
	// Engine runs the operations; nil means the real one.
	Engine Engine
	// Sleep waits between retries; nil means a timer honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// StdEnv is the environment of the mailark binary.
func StdEnv(version string) Env {
	return Env{
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		StderrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
		Version:          version,
	}
}

// Main runs mailark with args (without the program name) and returns the
// error whose kind decides the exit code (mailerr.ExitCode). A run whose
// context was cancelled (SIGINT, SIGTERM) always ends in ErrInterrupted,
// never in success.
func Main(ctx context.Context, args []string, env Env) error {
	if env.Engine == nil {
		env.Engine = coreEngine{}
	}
	if env.Sleep == nil {
		env.Sleep = sleepCtx
	}
	if env.Version == "" {
		env.Version = buildVersion()
	}
	a := &app{env: &env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && !a.started && !errors.Is(err, mailerr.ErrUsage) {
		// cobra's own errors: unknown command or flag, wrong arguments.
		err = cobraUsageError(err, args)
	}
	if ctx.Err() != nil && !errors.Is(err, mailerr.ErrInterrupted) {
		if err == nil {
			err = mailerr.E(mailerr.ErrInterrupted, nil, "interrupted")
		} else {
			err = mailerr.E(mailerr.ErrInterrupted, err, "interrupted")
		}
	}
	return err
}

// FormatError is the one line main prints on stderr.
func FormatError(err error) string {
	return "mailark: " + oneLine(err.Error())
}

// app holds what the commands share.
type app struct {
	env *Env
	// started is set once a command's own code runs, so Main can tell
	// cobra's parse errors (usage) from the command's errors.
	started bool
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "mailark",
		Short: "Back up IMAP and POP3 mail into maildir/mbox archives, and restore them to IMAP",
		Long: `mailark copies mail out of IMAP and POP3 accounts into ordinary maildir or
mbox archives you own, keeps them current from cron, and puts them back onto
any IMAP server: after losing a device, when changing provider, or to move a
POP history to IMAP.

Archives are written as maildir:PATH or mbox:PATH. Passwords come from
MAILARK_PASSWORD, --password-file or --password-command, never from the
command line.
`,
		Example: `  mailark fetch imaps://me@mail.example.org maildir:~/Mail/backup
  mailark ls maildir:~/Mail/backup
  mailark restore maildir:~/Mail/backup imaps://me@new.example.com
  mailark run            # the jobs of ~/.config/mailark/config.toml
  mailark demo           # try it on embedded servers, no network needed`,
		Version:       a.env.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("mailark {{.Version}}\n")
	// Every command's help ends with the exit codes (cron wrappers and
	// monitoring act on them).
	root.SetUsageTemplate(root.UsageTemplate() + "\n" + exitCodeHelp() + "\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if !cmd.HasParent() && len(cmd.Commands()) > 0 {
			return flagsFirstError()
		}
		return mailerr.E(mailerr.ErrUsage, nil, "%s (see '%s --help')", err, cmd.CommandPath())
	})
	root.AddCommand(
		a.fetchCommand(),
		a.restoreCommand(),
		a.migrateCommand(),
		a.verifyCommand(),
		a.lsCommand(),
		a.runCommand(),
		a.demoCommand(),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error naming the arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(names) == 0 && len(args) > 0 {
			return mailerr.E(mailerr.ErrUsage, nil, "%s takes no arguments, got %q", cmd.Name(), args[0])
		}
		if len(args) != len(names) {
			return mailerr.E(mailerr.ErrUsage, nil, "%s needs %s, got %d argument(s) (see 'mailark %s --help')",
				cmd.Name(), strings.Join(names, " and "), len(args), cmd.Name())
		}
		return nil
	}
}

// begin marks that a command's own code runs (its errors are its own).
func (a *app) begin() { a.started = true }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// buildVersion is the module version stamped by `go build`/`go install`.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			return fmt.Sprintf("devel-%s%s", rev, dirty)
		}
	}
	return "devel"
}

// cobraUsageError turns cobra's multi-line parse errors into one line,
// and explains the usual mistake: flags before the command.
func cobraUsageError(err error, args []string) error {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		return flagsFirstError()
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	return mailerr.E(mailerr.ErrUsage, nil, "%s (see 'mailark --help')", msg)
}

func flagsFirstError() error {
	return mailerr.E(mailerr.ErrUsage, nil, "flags go after the command, as in 'mailark fetch --json SOURCE ARCHIVE' (see 'mailark --help')")
}

// usageErr is a usage error with a formatted message.
func usageErr(format string, args ...any) error {
	return mailerr.E(mailerr.ErrUsage, nil, format, args...)
}
