package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
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
	} else if opt.LedgerPath, err = foreignLedgerPath(req.Archive, req.Target.String()); err != nil {
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

// foreignLedgerPath is where the restore ledger of a tree another program
// wrote is kept: not in the tree (mailark never writes there) but under
// $XDG_STATE_HOME/mailark/ledgers, one file per tree and target.
func foreignLedgerPath(tree, target string) (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", mailerr.E(mailerr.ErrUsage, err, "cannot find a place for the restore ledger; set XDG_STATE_HOME")
		}
		base = filepath.Join(home, ".local", "state")
	}
	sum := sha256.Sum256([]byte(tree + "\x00" + target))
	name := filepath.Base(tree) + "-" + hex.EncodeToString(sum[:8]) + ".jsonl"
	dir := filepath.Join(base, "mailark", "ledgers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", mailerr.E(mailerr.ErrLocalIO, err, "cannot create the restore ledger directory")
	}
	return filepath.Join(dir, name), nil
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
