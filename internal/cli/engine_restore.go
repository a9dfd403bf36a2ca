package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/restore"
)

// Restore opens the archive (a mailark archive is locked, since its
// ledger is written; a foreign tree is only read), uploads it and closes
// it again.
func (coreEngine) Restore(ctx context.Context, req RestoreRequest) (Stats, error) {
	if err := mustExist(req.Archive); err != nil {
		return Stats{}, err
	}
	src, err := openReader(ctx, req.Archive, archive.Options{LockWait: req.LockWait, Logger: req.Logger, ReadOnly: req.DryRun})
	if err != nil {
		return Stats{}, err
	}
	defer src.Close()
	opt := restore.Options{
		FolderMap: req.FolderMap, Prefix: req.Prefix, Connections: req.Connections, DryRun: req.DryRun,
		Progress: req.Progress, Logger: req.Logger,
	}
	var ledger *archive.Ledger
	if own, ok := src.(*archive.Archive); ok {
		if !req.DryRun {
			if ledger, err = own.Ledger(req.Target.String()); err != nil {
				return Stats{}, err
			}
			defer ledger.Close()
		}
	} else if opt.LedgerPath, err = restore.LedgerPathFor(req.Archive, req.Target); err != nil {
		return Stats{}, err
	}
	res, err := restore.Restore(ctx, src, ledger, req.Target, opt)
	return restoreStats(res), err
}

// mustExist: restoring from a path that is not there is a typo, not an
// empty archive (archive.Open would create one).
func mustExist(spec string) error {
	path := spec
	if kind, p, ok := strings.Cut(spec, ":"); ok && (kind == string(archive.Maildir) || kind == string(archive.Mbox)) {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		return mailerr.E(mailerr.ErrUsage, nil, "%s does not exist; check the archive path", path)
	}
	return nil
}

func restoreStats(res *restore.Result) Stats {
	if res == nil {
		return Stats{}
	}
	st := Stats{Folders: res.Folders, Messages: int64(res.Uploaded), Bytes: res.Bytes, Skipped: int64(res.Skipped),
		Failed: res.Failed, Created: res.Created, Warnings: res.Warnings}
	for _, p := range res.Plan {
		st.PerFolder = append(st.PerFolder, FolderStats{Name: strings.Join(p.Sources, ", "), Target: p.Folder, Create: p.Create,
			Messages: int64(p.Upload), Bytes: p.Bytes, Skipped: int64(p.Present + p.InLedger), Note: p.Note})
	}
	return st
}

// Verify reads the archive without locking it and compares it with the
// account. Differences are the report's business, not an error: verify
// and migrate judge them differently.
func (coreEngine) Verify(ctx context.Context, req VerifyRequest) (VerifyReport, error) {
	if err := mustExist(req.Archive); err != nil {
		return VerifyReport{}, err
	}
	src, err := openReader(ctx, req.Archive, archive.Options{ReadOnly: true, Logger: req.Logger})
	if err != nil {
		return VerifyReport{}, err
	}
	defer src.Close()
	diffs, err := restore.Verify(ctx, src, req.Account, restore.Options{FolderMap: req.FolderMap, Prefix: req.Prefix,
		Connections: req.Connections, Logger: req.Logger})
	if errors.Is(err, mailerr.ErrMismatch) {
		err = nil
	}
	var rep VerifyReport
	for _, d := range diffs {
		f := VerifyFolder{Name: strings.Join(d.Sources, ", "), Target: d.Folder, Matched: int64(d.Matched),
			MissingOnServer: int64(len(d.MissingOnServer)), MissingInArchive: int64(len(d.MissingInArchive)),
			FlagsDiffer: int64(d.FlagsDiffer), Note: d.Note}
		for _, m := range d.MissingOnServer {
			f.MissingOnServerIDs = append(f.MissingOnServerIDs, messageLabel(m.MessageID, "key "+m.Key))
		}
		for _, m := range d.MissingInArchive {
			f.MissingInArchiveIDs = append(f.MissingInArchiveIDs, messageLabel(m.MessageID, fmt.Sprintf("UID %d", m.UID)))
		}
		rep.Folders = append(rep.Folders, f)
	}
	return rep, err
}

// messageLabel names a message in a report: its Message-ID, or else where
// it is.
func messageLabel(id, fallback string) string {
	if id != "" {
		return id
	}
	return fallback
}
