package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/cli/config"
)

// fetchOptions are the flags and arguments of `mailark fetch`.
type fetchOptions struct {
	Source  string
	Archive string
	DryRun  bool

	Output  outputFlags
	Conn    connFlags
	Secret  secretFlags
	Folders folderFlags
	POP3    pop3Flags
	Lock    lockFlags
}

func (a *app) fetchCommand() *cobra.Command {
	var o fetchOptions
	cmd := &cobra.Command{
		Use:   "fetch SOURCE ARCHIVE",
		Short: "Back up an IMAP or POP3 account into an archive (only what is new)",
		Long: `Fetch copies every folder of an IMAP account (Sent, Drafts, nested and
non-ASCII folders included), or the inbox of a POP3 account, into an archive,
and on later runs only what changed: new messages, and flag changes on IMAP.

SOURCE is imaps://USER@HOST[:PORT] (implicit TLS), imap://USER@HOST
(STARTTLS), pop3s://USER@HOST or pop3://USER@HOST. Add ?auth=xoauth2 or
?auth=oauthbearer for OAuth with --oauth-token-command. Plaintext is used
without asking only towards a loopback address.

ARCHIVE is maildir:PATH or mbox:PATH; it is created when missing.

An IMAP fetch never changes the server (EXAMINE and BODY.PEEK only). A POP3
fetch leaves mail on the server unless --delete or --delete-older-than is
given, and then deletes only what is durably in the archive.

The password is read from MAILARK_PASSWORD, --password-file or
--password-command; it is never accepted on the command line.`,
		Example: `  # nightly backup of a whole IMAP account
  MAILARK_PASSWORD=... mailark fetch imaps://me@mail.example.org maildir:~/Mail/backup

  # a password manager supplies the password
  mailark fetch --password-command 'pass show mail/work' imaps://me@work.example maildir:~/Mail/work

  # a POP3 box: keep 30 days on the server
  mailark fetch --delete-older-than 30d pop3s://me@pop.isp.example mbox:~/Mail/isp

  # only some folders; see what would be fetched first
  mailark fetch --dry-run --include 'INBOX' --include 'Projects/*' imaps://me@host mbox:/srv/mail`,
		Args: exactArgs("SOURCE", "ARCHIVE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			o.Source, o.Archive = args[0], args[1]
			return a.runFetch(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.DryRun, "dry-run", "n", false, "show what would be fetched; write nothing")
	o.Output.register(cmd)
	o.Conn.register(cmd)
	registerSecretFlags(cmd, &o.Secret, false)
	o.Folders.register(cmd)
	o.POP3.register(cmd)
	o.Lock.register(cmd)
	return cmd
}

// runFetch is `mailark fetch` without cobra, for tests.
func (a *app) runFetch(ctx context.Context, o fetchOptions) error {
	return a.runSingle(ctx, o.Output, o.job)
}

func (o fetchOptions) job(s *session) (*job, error) {
	if err := o.Conn.check(); err != nil {
		return nil, err
	}
	if err := o.Folders.check(); err != nil {
		return nil, err
	}
	spec, err := archiveSpec(o.Archive)
	if err != nil {
		return nil, err
	}
	src, err := o.Conn.sourceAccount(s, o.Source, o.Secret)
	if err != nil {
		return nil, err
	}
	if err := o.POP3.check(src); err != nil {
		return nil, err
	}
	return fetchJob("", src, spec, o.Conn, o.Folders, o.POP3, o.Lock.LockWait, o.DryRun), nil
}

func fetchJob(name string, src *account.Account, spec string, conn connFlags, folders folderFlags, pop pop3Flags, lockWait time.Duration, dryRun bool) *job {
	return &job{
		name: name, kind: config.KindFetch, archive: spec, source: src.String(),
		dryRun: dryRun, retries: conn.Retries,
		fetch: &FetchRequest{
			Source: src, Archive: spec, LockWait: lockWait,
			Include: folders.Include, Exclude: folders.Exclude, SkipAllMail: folders.SkipAllMail,
			Connections: conn.Connections, DryRun: dryRun,
			Delete: pop.Delete, DeleteOlderThan: time.Duration(pop.DeleteOlderThan), MarkSeen: pop.MarkSeen,
		},
	}
}
