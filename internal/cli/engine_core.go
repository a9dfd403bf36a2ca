package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailark/mailark/archive"
)

// coreEngine drives mailark's archive, fetch and restore packages.
type coreEngine struct{}

// List reads an archive without locking it: ls works while a fetch runs.
func (coreEngine) List(ctx context.Context, spec string) (Listing, error) {
	r, err := openReader(ctx, spec, archive.Options{ReadOnly: true})
	if err != nil {
		return Listing{}, err
	}
	defer r.Close()
	folders, err := r.Folders()
	if err != nil {
		return Listing{}, err
	}
	l := Listing{Archive: spec}
	own, isOwn := r.(*archive.Archive)
	switch {
	case isOwn:
		l.Format = string(own.Format())
		l.Archive = string(own.Format()) + ":" + own.Root()
	default:
		l.Foreign = true
		l.Format = "mail folders"
		if f, ok := r.(*archive.Foreign); ok {
			l.Format, l.Archive = f.Layout(), f.Root()
		}
	}
	if !isOwn {
		// A foreign tree knows its counts once each folder has been read.
		for _, fi := range folders {
			if !fi.NoSelect {
				if _, err := r.Messages(fi.Name); err != nil {
					return Listing{}, err
				}
			}
		}
		if folders, err = r.Folders(); err != nil {
			return Listing{}, err
		}
	}
	for _, fi := range folders {
		lf := ListFolder{Name: fi.Name, SpecialUse: fi.SpecialUse, Messages: fi.Messages, Bytes: fi.Bytes, NoSelect: fi.NoSelect}
		if isOwn && !fi.NoSelect {
			f, err := own.Folder(fi.Name)
			if err != nil {
				return Listing{}, err
			}
			if st := f.State(); st.Source != "" {
				lf.Sync = []SourceSync{{Source: st.Source, ServerName: st.ServerName, LastSync: st.LastSync,
					UIDValidity: st.UIDValidity, LastUID: st.LastUID, Gone: st.Gone}}
			}
		}
		l.Folders = append(l.Folders, lf)
	}
	return l, nil
}

// openReader opens what restore, verify and ls read: a mailark archive
// (maildir:PATH, mbox:PATH, or a bare path holding one), or else any mail
// tree another program wrote, read-only through archive.OpenForeign.
func openReader(ctx context.Context, spec string, opt archive.Options) (archive.Reader, error) {
	if kind, path, ok := strings.Cut(spec, ":"); ok && (kind == string(archive.Maildir) || kind == string(archive.Mbox)) {
		a, err := archive.Open(ctx, spec, opt)
		if err == nil {
			return a, nil
		}
		// maildir:~/Maildir of another program is still worth reading.
		if errors.Is(err, archive.ErrNotArchive) && !hasSidecar(path) && exists(path) {
			return archive.OpenForeign(path)
		}
		return nil, err
	}
	if hasSidecar(spec) {
		return openOwnBare(ctx, spec, opt)
	}
	return archive.OpenForeign(spec)
}

// openOwnBare opens a mailark archive given without its format: the
// sidecar says which one it is.
func openOwnBare(ctx context.Context, path string, opt archive.Options) (*archive.Archive, error) {
	a, err := archive.Open(ctx, "maildir:"+path, opt)
	if errors.Is(err, archive.ErrBadSpec) {
		return archive.Open(ctx, "mbox:"+path, opt)
	}
	return a, err
}

func hasSidecar(path string) bool {
	st, err := os.Stat(filepath.Join(path, ".mailark"))
	return err == nil && st.IsDir()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
