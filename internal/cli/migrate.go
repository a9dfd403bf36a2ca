package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/cli/config"
)

// migrateOptions are the flags and arguments of `mailark migrate`.
type migrateOptions struct {
	Source  string
	Target  string
	Archive string
	Add     []string
	DryRun  bool

	Output       outputFlags
	Conn         connFlags
	TargetCAFile string
	Secret       secretFlags
	TargetSecret secretFlags
	Folders      folderFlags
	POP3         pop3Flags
	Map          mapFlags
	Lock         lockFlags
}

func (a *app) migrateCommand() *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate SOURCE TARGET --archive ARCHIVE [--add LOCAL]...",
		Short: "Move an account (IMAP or POP3, plus local folders) to an IMAP account, keeping an archive",
		Long: `Migrate fetches SOURCE into ARCHIVE, restores the archive and every --add
tree to TARGET, and verifies that every archived message is on the target.
The archive stays as the safety copy. Rerunning is safe: only what is new is
fetched, only what is missing is uploaded.

For a POP3 history, add the mail client's local folders with --add (its Sent
folder, old folders): any mbox file, mbox tree or maildir. A local Sent folder
lands in the target's Sent folder.

Passwords: the source's from --password-file/-command/-env or
MAILARK_PASSWORD; the target's from --target-password-file/-command/-env,
else MAILARK_TARGET_PASSWORD, else MAILARK_PASSWORD. --ca-file applies to the
source, --target-ca-file to the target.

Verification after the upload fails (exit 11) only when archived messages are
missing on the target; the target may hold more mail than the archive.`,
		Example: `  # a POP3 box plus Thunderbird's local Sent folder, to a new IMAP account
  MAILARK_PASSWORD=old MAILARK_TARGET_PASSWORD=new mailark migrate \
      pop3s://me@pop.isp.example imaps://me@new.example \
      --archive maildir:~/Mail/isp --add ~/.thunderbird/x.default/Mail/Local\ Folders/Sent

  # change provider
  mailark migrate imaps://me@old.example imaps://me@new.example --archive mbox:~/Mail/old`,
		Args: exactArgs("SOURCE", "TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			o.Source, o.Target = args[0], args[1]
			return a.runMigrate(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Archive, "archive", "", "the archive to fetch into and restore from: maildir:PATH or mbox:PATH (required)")
	f.StringArrayVar(&o.Add, "add", nil, "also restore this local mbox file, mbox tree or maildir (`PATH`, repeatable)")
	f.BoolVarP(&o.DryRun, "dry-run", "n", false, "show what would be fetched and uploaded; change nothing")
	f.StringVar(&o.TargetCAFile, "target-ca-file", "", "trust only the CA certificates in `FILE` for the target")
	o.Output.register(cmd)
	o.Conn.register(cmd)
	registerSecretFlags(cmd, &o.Secret, false)
	registerSecretFlags(cmd, &o.TargetSecret, true)
	o.Folders.register(cmd)
	o.POP3.register(cmd)
	o.Map.register(cmd)
	o.Lock.register(cmd)
	return cmd
}

// runMigrate is `mailark migrate` without cobra, for tests.
func (a *app) runMigrate(ctx context.Context, o migrateOptions) error {
	return a.runSingle(ctx, o.Output, o.job)
}

func (o migrateOptions) job(s *session) (*job, error) {
	if o.Archive == "" {
		return nil, usageErr("migrate needs --archive maildir:PATH or mbox:PATH: the archive is the safety copy")
	}
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
	fm, err := o.Map.parse()
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
	target, err := o.Conn.targetAccount(s, "migrate", o.Target, o.TargetCAFile, o.TargetSecret, "--target-")
	if err != nil {
		return nil, err
	}
	var adds []string
	for _, p := range o.Add {
		path, err := readableArchive(p)
		if err != nil {
			return nil, err
		}
		adds = append(adds, path)
	}
	return migrateJob("", src, target, spec, adds, o.Conn, o.Folders, o.POP3, fm, o.Map.Prefix, o.Lock.LockWait, o.DryRun), nil
}

func migrateJob(name string, src, target *account.Account, spec string, adds []string, conn connFlags,
	folders folderFlags, pop pop3Flags, fm map[string]string, prefix string, lockWait time.Duration, dryRun bool) *job {
	j := fetchJob(name, src, spec, conn, folders, pop, lockWait, dryRun)
	j.kind = config.KindMigrate
	j.target = target.String()
	for _, from := range append([]string{spec}, adds...) {
		j.restore = append(j.restore, RestoreRequest{Target: target, Archive: from, LockWait: lockWait,
			FolderMap: fm, Prefix: prefix, Connections: conn.Connections, DryRun: dryRun})
		if !dryRun {
			j.verify = append(j.verify, VerifyRequest{Account: target, Archive: from, FolderMap: fm, Prefix: prefix,
				Connections: conn.Connections})
		}
	}
	return j
}
