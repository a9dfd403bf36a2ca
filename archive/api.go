package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// errNotReady marks API functions whose implementation has not landed yet.
var errNotReady = errors.New("archive: not implemented yet")

// ParseSpec splits an archive spec "maildir:PATH" or "mbox:PATH".
func ParseSpec(spec string) (Format, string, error) {
	kind, path, ok := strings.Cut(spec, ":")
	if !ok || path == "" {
		return "", "", fmt.Errorf("%w %q: write maildir:PATH or mbox:PATH", ErrBadSpec, spec)
	}
	switch Format(kind) {
	case Maildir, Mbox:
		return Format(kind), path, nil
	}
	return "", "", fmt.Errorf("%w %q: unknown format %q (use maildir or mbox)", ErrBadSpec, spec, kind)
}

// Options control how Open treats an archive.
type Options struct {
	LockWait time.Duration // how long to wait for another run's lock (0: fail at once)
	ReadOnly bool          // no lock, no repair, no writes (ls, verify)
	Logger   *slog.Logger  // nil: discard
}

// Archive is an open mailark archive.
type Archive struct {
	format Format
	root   string
}

// Open opens (creating it unless ReadOnly) the archive named by spec.
func Open(ctx context.Context, spec string, opt Options) (*Archive, error) {
	if _, _, err := ParseSpec(spec); err != nil {
		return nil, err
	}
	return nil, errNotReady
}

func (a *Archive) Close() error   { return errNotReady }
func (a *Archive) Format() Format { return a.format }
func (a *Archive) Root() string   { return a.root }

func (a *Archive) Folders() ([]FolderInfo, error)                 { return nil, errNotReady }
func (a *Archive) Messages(folder string) ([]Meta, error)         { return nil, errNotReady }
func (a *Archive) Open(folder, key string) (io.ReadCloser, error) { return nil, errNotReady }

func (a *Archive) Folder(name string) (*Folder, error) { return nil, errNotReady }
func (a *Archive) CreateFolder(name string, specialUse string) (*Folder, error) {
	return nil, errNotReady
}
func (a *Archive) Ledger(target string) (*Ledger, error) { return nil, errNotReady }

// Folder is one folder of an archive.
type Folder struct{}

func (f *Folder) Info() FolderInfo                                  { return FolderInfo{} }
func (f *Folder) SetSpecialUse(use string) error                    { return errNotReady }
func (f *Folder) State() SyncState                                  { return SyncState{} }
func (f *Folder) SetState(s SyncState)                              {}
func (f *Folder) Append(r io.Reader, info AppendInfo) (Meta, error) { return Meta{}, errNotReady }
func (f *Folder) SetFlags(key string, flags []string) error         { return errNotReady }
func (f *Folder) Commit() error                                     { return errNotReady }
func (f *Folder) Entries() []Meta                                   { return nil }
func (f *Folder) ByUID(uid uint32) (Meta, bool)                     { return Meta{}, false }
func (f *Folder) ByUIDL(uidl string) (Meta, bool)                   { return Meta{}, false }
func (f *Folder) BySHA256(sum string) []Meta                        { return nil }
func (f *Folder) ByMessageID(id string) []Meta                      { return nil }
func (f *Folder) Open(key string) (io.ReadCloser, error)            { return nil, errNotReady }

// Ledger records what a restore uploaded to one target.
type Ledger struct{}

// LedgerEntry is one uploaded message.
type LedgerEntry struct {
	Folder, Key, SHA256 string // archive side
	TargetFolder        string
	UIDValidity, UID    uint32 // target side (UID 0 when no UIDPLUS)
	At                  time.Time
}

func OpenLedger(path string) (*Ledger, error)         { return nil, errNotReady }
func (l *Ledger) Has(folder, key, sha256 string) bool { return false }
func (l *Ledger) Record(entries ...LedgerEntry) error { return errNotReady }
func (l *Ledger) Close() error                        { return errNotReady }

var _ Reader = (*Archive)(nil)
