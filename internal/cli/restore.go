package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/cli/config"
)

// restoreOptions are the flags and arguments of `mailark restore`.
type restoreOptions struct {
	Archive string
	Target  string
	DryRun  bool

	Output outputFlags
	Conn   connFlags
	// Secret (--password-*) and TargetSecret (--target-password-*) both
	// name the target's password: restore has only one account, and
	// people type either.
	Secret       secretFlags
	TargetSecret secretFlags
	Map          mapFlags
	Lock         lockFlags
}

func (a *app) restoreCommand() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore ARCHIVE TARGET",
		Short: "Upload an archive (mailark's, or any mbox/maildir) to an IMAP account, exactly once",
		Long: `Restore puts an archive back onto an IMAP account: folders are created with
the target's separator and names, Sent/Drafts/Trash/Junk/Archive land in the
target's own special folders, flags and dates are kept. A ledger in the
archive records every upload, so an interrupted restore resumes and a rerun
uploads nothing twice; messages already on the target are skipped.

ARCHIVE is a mailark archive (maildir:PATH, mbox:PATH) or the path of any
mbox file, mbox folder tree or maildir another program wrote: Thunderbird,
mutt, Dovecot, mbsync, OfflineIMAP. TARGET is imaps://USER@HOST or
imap://USER@HOST (STARTTLS).

The target's password comes from --target-password-file/-command/-env or
--password-file/-command/-env, else from MAILARK_TARGET_PASSWORD, else from
MAILARK_PASSWORD. Restore never deletes or changes anything already on the
target.`,
		Example: `  # after losing a laptop: put the nightly backup on the server again
  mailark restore maildir:~/Mail/backup imaps://me@mail.example.org

  # a Thunderbird profile folder, into "Old mail" on the new account
  mailark restore --prefix 'Old mail' ~/.thunderbird/x.default/Mail/pop.isp.example imaps://me@new.example

  # see the plan first
  mailark restore --dry-run --folder-map 'Archiv=Archive' mbox:~/Mail/old imaps://me@host`,
		Args: exactArgs("ARCHIVE", "TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			o.Archive, o.Target = args[0], args[1]
			return a.runRestore(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.DryRun, "dry-run", "n", false, "show the plan (folders to create, messages to upload, duplicates skipped); upload nothing")
	o.Output.register(cmd)
	o.Conn.register(cmd)
	registerSecretFlags(cmd, &o.Secret, false)
	registerSecretFlags(cmd, &o.TargetSecret, true)
	o.Map.register(cmd)
	o.Lock.register(cmd)
	return cmd
}

// runRestore is `mailark restore` without cobra, for tests.
func (a *app) runRestore(ctx context.Context, o restoreOptions) error {
	return a.runSingle(ctx, o.Output, o.job)
}

func (o restoreOptions) job(s *session) (*job, error) {
	if err := o.Conn.check(); err != nil {
		return nil, err
	}
	src, err := readableArchive(o.Archive)
	if err != nil {
		return nil, err
	}
	fm, err := o.Map.parse()
	if err != nil {
		return nil, err
	}
	secret, prefix := o.TargetSecret, "--target-"
	if !secret.isSet() && o.Secret.isSet() {
		secret, prefix = o.Secret, "--"
	}
	target, err := o.Conn.targetAccount(s, "restore", o.Target, o.Conn.CAFile, secret, prefix)
	if err != nil {
		return nil, err
	}
	return restoreJob("", src, target, o.Conn, fm, o.Map.Prefix, o.Lock.LockWait, o.DryRun), nil
}

func restoreJob(name, from string, target *account.Account, conn connFlags, fm map[string]string, prefix string,
	lockWait time.Duration, dryRun bool) *job {
	return &job{
		name: name, kind: config.KindRestore, archive: from, target: target.String(),
		dryRun: dryRun, retries: conn.Retries,
		restore: []RestoreRequest{{Target: target, Archive: from, LockWait: lockWait, FolderMap: fm,
			Prefix: prefix, Connections: conn.Connections, DryRun: dryRun}},
	}
}

// requireIMAP: mail can only be put back through IMAP.
func requireIMAP(a *account.Account, what string) error {
	if a.Protocol != account.IMAP {
		return usageErr("%s needs an IMAP target (imaps:// or imap://), not %s: POP3 cannot store mail", what, a)
	}
	return nil
}
