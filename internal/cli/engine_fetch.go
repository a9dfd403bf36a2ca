package cli

import (
	"context"
	"errors"
	"os"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/fetch"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
)

// Fetch opens (creating, locking, repairing) the archive, runs the IMAP or
// POP3 source into it and closes it, which releases the lock.
func (coreEngine) Fetch(ctx context.Context, req FetchRequest) (Stats, error) {
	arc, cleanup, err := openForFetch(ctx, req)
	if err != nil {
		return Stats{}, err
	}
	opt := fetch.Options{
		Include: req.Include, Exclude: req.Exclude, SkipAllMail: req.SkipAllMail,
		Connections: req.Connections, DryRun: req.DryRun,
		Progress: req.Progress, Logger: req.Logger,
		Delete: req.Delete, DeleteOlderThan: req.DeleteOlderThan, MarkSeen: req.MarkSeen,
	}
	var res *fetch.Result
	switch req.Source.Protocol {
	case account.POP3:
		res, err = fetch.POP3(ctx, req.Source, arc, opt)
	default:
		res, err = fetch.IMAP(ctx, req.Source, arc, opt)
	}
	if cerr := cleanup(); cerr != nil && err == nil {
		err = mailerr.E(mailerr.ErrLocalIO, cerr, "cannot close archive %s", req.Archive)
	}
	return fetchStats(res), err
}

// openForFetch opens the archive for writing; a dry run writes nothing, so
// it reads the archive without locking it, and plans against an empty
// throw-away archive when there is none yet (everything would be new).
func openForFetch(ctx context.Context, req FetchRequest) (*archive.Archive, func() error, error) {
	if !req.DryRun {
		arc, err := archive.Open(ctx, req.Archive, archive.Options{LockWait: req.LockWait, Logger: req.Logger})
		if err != nil {
			return nil, nil, err
		}
		return arc, arc.Close, nil
	}
	arc, err := archive.Open(ctx, req.Archive, archive.Options{ReadOnly: true, Logger: req.Logger})
	if err == nil {
		return arc, arc.Close, nil
	}
	format, path, perr := archive.ParseSpec(req.Archive)
	if perr != nil || !errors.Is(err, archive.ErrNotArchive) || exists(path) {
		return nil, nil, err
	}
	tmp, terr := os.MkdirTemp("", "mailark-plan-")
	if terr != nil {
		return nil, nil, mailerr.E(mailerr.ErrLocalIO, terr, "cannot plan the dry run")
	}
	arc, err = archive.Open(ctx, string(format)+":"+tmp+"/archive", archive.Options{Logger: req.Logger})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	return arc, func() error { defer os.RemoveAll(tmp); return arc.Close() }, nil
}

func fetchStats(res *fetch.Result) Stats {
	if res == nil {
		return Stats{}
	}
	st := Stats{
		Folders: res.Folders, Messages: int64(res.NewMessages), Bytes: res.Bytes,
		Deleted: int64(res.Deleted), Skipped: int64(res.Duplicates),
		FlagUpdates: res.FlagUpdates, NewFolders: res.NewFolders, GoneFolders: res.GoneFolders,
		Warnings: res.Warnings,
	}
	for _, p := range res.Planned {
		st.PerFolder = append(st.PerFolder, FolderStats{Name: p.Folder, Target: p.ServerName, Create: p.Create,
			Messages: int64(p.Messages), Bytes: p.Bytes})
	}
	if res.DryRun {
		var n, b int64
		for _, p := range res.Planned {
			n += int64(p.Messages)
			b += p.Bytes
		}
		if st.Messages == 0 && st.Bytes == 0 {
			st.Messages, st.Bytes = n, b
		}
	}
	return st
}
