package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/demo"
	"github.com/mailark/mailark/internal/mailerr"
)

// demoOptions are the flags of `mailark demo`.
type demoOptions struct {
	Dir    string
	Format string
	Output outputFlags
}

func (a *app) demoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show mailark at work on embedded servers (no network, nothing to set up)",
		Long: `Demo starts an IMAP server and a POP3 server inside mailark, on loopback
ports, with realistic mail in them, and then does what mailark is for:

  1. backs up an IMAP account (INBOX, Sent, Drafts, nested and non-ASCII
     folders, flags) into an archive, and runs the backup again (nothing new);
  2. lists the archive;
  3. restores the archive to an empty account, as after losing a device,
     verifies it, and restores again (nothing is uploaded twice);
  4. migrates a POP3 box plus the mail client's local Sent folder to a new
     IMAP account that already holds some of the same messages, then verifies.

Nothing is installed and nothing leaves the machine. The archives go to a
temporary directory that is removed at the end, unless --dir is given.`,
		Example: `  mailark demo
  mailark demo --format mbox --dir /tmp/mailark-demo   # keep the archives to look at`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			return a.runDemo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "keep the demo's archives and files in `DIR` (default: a temporary directory, removed at the end)")
	f.StringVar(&o.Format, "format", "maildir", "archive format: maildir or mbox")
	f.StringVar(&o.Output.Progress, "progress", "auto", "progress bar: auto (only when stderr is a terminal), always or never")
	f.BoolVarP(&o.Output.Verbose, "verbose", "v", false, "trace the protocol on stderr (passwords redacted)")
	return cmd
}

// demoRun is one demo: its servers, its session and where it writes.
type demoRun struct {
	a   *app
	s   *session
	srv *demo.Servers
	dir string
	fmt string
}

// runDemo is `mailark demo` without cobra, for tests.
func (a *app) runDemo(ctx context.Context, o demoOptions) error {
	if o.Format != "maildir" && o.Format != "mbox" {
		return usageErr("--format %q: use maildir or mbox", o.Format)
	}
	s, err := newSession(a.env, o.Output)
	if err != nil {
		return err
	}
	defer s.Close()
	s.narrate, s.indent = true, "   "
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mailark-demo-"); err != nil {
			return mailerr.E(mailerr.ErrLocalIO, err, "cannot create a temporary directory for the demo")
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return mailerr.E(mailerr.ErrLocalIO, err, "cannot create --dir")
	}
	srv, err := demo.Start(filepath.Join(dir, "client"))
	if err != nil {
		return err
	}
	defer srv.Close()
	d := &demoRun{a: a, s: s, srv: srv, dir: dir, fmt: o.Format}
	return d.run(ctx, o.Dir != "")
}

func (d *demoRun) say(format string, args ...any) { fmt.Fprintf(d.s.stdout, format+"\n", args...) }

func (d *demoRun) run(ctx context.Context, keep bool) error {
	d.say("mailark demo: two mail servers are running inside this process, on 127.0.0.1; nothing leaves the machine.")
	d.say("")
	backup := d.spec("backup")
	if err := d.backup(ctx, backup); err != nil {
		return err
	}
	d.say("")
	d.say("2. What the archive holds (mailark ls %s):", backup)
	if err := d.list(ctx, backup); err != nil {
		return err
	}
	d.say("")
	if err := d.restore(ctx, backup); err != nil {
		return err
	}
	d.say("")
	if err := d.migrate(ctx); err != nil {
		return err
	}
	d.say("")
	if keep {
		d.say("The archives are in %s; they are ordinary %s trees (try mutt -f, or Dovecot).", d.dir, d.fmt)
	}
	d.say("Next: mailark fetch --help, and docs/cron.md for nightly backups.")
	return nil
}

func (d *demoRun) spec(name string) string {
	return d.fmt + ":" + filepath.Join(d.dir, name+"-archive")
}

func (d *demoRun) account(url string) (*account.Account, error) {
	return accountSpec{URL: url, Secret: secretFlags{Inline: demo.Password}, flagPrefix: "--",
		envNames: []string{EnvPassword}}.build(d.s)
}

// step runs one job with the session's bar and prints its summary.
func (d *demoRun) step(ctx context.Context, j *job) error {
	disp := d.s.newDisplay()
	r := d.a.runJob(ctx, d.s, disp, j)
	if disp != nil {
		disp.Close()
	}
	d.s.report(j, r)
	return r.err
}

func (d *demoRun) backup(ctx context.Context, spec string) error {
	b := d.srv.Backup
	d.say("1. Backing up %s, %s:", b.URL, b.Description)
	for _, f := range b.Folders {
		d.say("     %-24s %s", f.Name, plural(int64(f.Messages), "message", "messages"))
	}
	acct, err := d.account(b.URL)
	if err != nil {
		return err
	}
	conn := connFlags{Connections: defaultConnections, Retries: 0}
	j := fetchJob("", acct, spec, conn, folderFlags{}, pop3Flags{}, 0, false)
	d.say("   $ mailark fetch %s %s", b.URL, spec)
	if err := d.step(ctx, j); err != nil {
		return err
	}
	d.say("   Run it again, as cron would: only what is new is fetched.")
	return d.step(ctx, fetchJob("", acct, spec, conn, folderFlags{}, pop3Flags{}, 0, false))
}

func (d *demoRun) list(ctx context.Context, spec string) error {
	l, err := d.a.env.Engine.List(ctx, spec)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeListing(&buf, l); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		d.say("   %s", line)
	}
	return nil
}

func (d *demoRun) restore(ctx context.Context, spec string) error {
	fresh := d.srv.Fresh
	d.say("3. The laptop is lost: restoring the archive to %s, %s.", fresh.URL, fresh.Description)
	target, err := d.account(fresh.URL)
	if err != nil {
		return err
	}
	j := &job{kind: "restore", archive: spec, target: target.String()}
	j.restore = []RestoreRequest{{Target: target, Archive: spec, Connections: defaultConnections}}
	d.say("   $ mailark restore %s %s", spec, fresh.URL)
	if err := d.step(ctx, j); err != nil {
		return err
	}
	d.say("   $ mailark verify %s %s", spec, fresh.URL)
	v := &job{kind: "verify", archive: spec, target: target.String()}
	v.verify = []VerifyRequest{{Account: target, Archive: spec, Connections: defaultConnections}}
	if err := d.step(ctx, v); err != nil {
		return err
	}
	d.say("   Run the restore again: nothing is uploaded twice.")
	return d.step(ctx, j)
}

func (d *demoRun) migrate(ctx context.Context) error {
	pop, target := d.srv.OldPOP, d.srv.NewIMAP
	d.say("4. Moving %s, %s,", pop.URL, pop.Description)
	d.say("   plus the mail client's local Sent folder (%s),", d.srv.LocalSent)
	d.say("   to %s, %s:", target.URL, target.Description)
	src, err := d.account(pop.URL)
	if err != nil {
		return err
	}
	dst, err := d.account(target.URL)
	if err != nil {
		return err
	}
	d.say("   The local Sent folder as mailark reads it (mailark ls '%s'):", d.srv.LocalSent)
	if err := d.list(ctx, d.srv.LocalSent); err != nil {
		return err
	}
	spec := d.spec("pop")
	conn := connFlags{Connections: defaultConnections, Retries: 0}
	j := migrateJob("", src, dst, spec, []string{d.srv.LocalSent}, conn, folderFlags{}, pop3Flags{}, nil, "", 0, false)
	d.say("   $ mailark migrate %s %s --archive %s --add '%s'", pop.URL, target.URL, spec, d.srv.LocalSent)
	if err := d.step(ctx, j); err != nil {
		return err
	}
	folders, err := d.srv.NewAccountFolders()
	if err != nil {
		return err
	}
	d.say("   The new account now holds (read on the server):")
	for _, f := range folders {
		d.say("     %-24s %s", f.Name, plural(int64(f.Messages), "message", "messages"))
	}
	return nil
}
