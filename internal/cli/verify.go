package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailark/mailark/internal/mailerr"
)

// verifyOptions are the flags and arguments of `mailark verify`.
type verifyOptions struct {
	Archive string
	URL     string

	Output outputFlags
	Conn   connFlags
	Secret secretFlags
	Map    mapFlags
}

func (a *app) verifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify ARCHIVE URL",
		Short: "Compare an archive with an IMAP account, both ways",
		Long: `Verify compares every folder of ARCHIVE with the matching folder of the IMAP
account at URL, by Message-ID, size and date (a header digest for messages
without Message-ID), counting copies: what the archive has that the server
lacks, and what the server has that the archive lacks. It changes nothing.

Exit code 0 means they match; 11 means they differ, and the differing folders
are listed. Use the same --folder-map and --prefix as for the restore.

The password comes from --password-file/-command/-env or MAILARK_PASSWORD.`,
		Example: `  mailark verify maildir:~/Mail/backup imaps://me@mail.example.org
  mailark verify --json --prefix 'Old mail' mbox:~/Mail/old imaps://me@new.example`,
		Args: exactArgs("ARCHIVE", "URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			o.Archive, o.URL = args[0], args[1]
			return a.runVerify(cmd.Context(), o)
		},
	}
	o.Output.register(cmd)
	o.Conn.register(cmd)
	registerSecretFlags(cmd, &o.Secret, false)
	o.Map.register(cmd)
	return cmd
}

// runVerify is `mailark verify` without cobra, for tests.
func (a *app) runVerify(ctx context.Context, o verifyOptions) error {
	s, err := newSession(a.env, o.Output)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := o.Conn.check(); err != nil {
		return err
	}
	src, err := readableArchive(o.Archive)
	if err != nil {
		return err
	}
	fm, err := o.Map.parse()
	if err != nil {
		return err
	}
	acct, err := o.Conn.sourceAccount(s, o.URL, o.Secret)
	if err != nil {
		return err
	}
	if err := requireIMAP(acct, "verify"); err != nil {
		return err
	}
	j := &job{kind: "verify", archive: src, target: acct.String(), retries: o.Conn.Retries}
	start := time.Now()
	r := &jobResult{Type: "job", Kind: "verify", Target: j.target, Archive: src}
	rep, attempts, err := retryStep(ctx, a, s, j, "verify", func(ctx context.Context) (VerifyReport, error) {
		return a.env.Engine.Verify(ctx, VerifyRequest{Account: acct, Archive: src, FolderMap: fm, Prefix: o.Map.Prefix,
			Connections: o.Conn.Connections, Logger: s.logger})
	})
	r.Attempts = attempts
	if err == nil {
		r.Verify = &rep
		if rep.Differs() {
			err = mailerr.E(mailerr.ErrMismatch, nil, "%s and %s differ", src, acct)
		}
	}
	r.finish(err, time.Since(start))
	s.report(j, r)
	s.emit(summarize([]*jobResult{r}, r.duration, err))
	return err
}
