package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/mailark/mailark/internal/mailerr"
)

// ParseSpec splits an archive spec "maildir:PATH" or "mbox:PATH".
func ParseSpec(spec string) (Format, string, error) {
	kind, path, ok := strings.Cut(spec, ":")
	if !ok || path == "" {
		return "", "", kinded(usageBadSpec, "archive %q: write maildir:PATH or mbox:PATH", spec)
	}
	switch Format(kind) {
	case Maildir, Mbox:
		return Format(kind), path, nil
	}
	return "", "", kinded(usageBadSpec, "archive %q: unknown format %q (use maildir:PATH or mbox:PATH)", spec, kind)
}

// Options control how Open treats an archive.
type Options struct {
	LockWait time.Duration // how long to wait for another run's lock (0: fail at once)
	ReadOnly bool          // no lock, no repair, no writes (ls, verify)
	Logger   *slog.Logger  // nil: discard
}

// Archive is an open mailark archive. Its methods are safe for concurrent
// use; each Folder is for one goroutine at a time.
type Archive struct {
	format   Format
	root     string
	side     string // ROOT/.mailark
	readOnly bool
	log      *slog.Logger
	lock     *flock.Flock

	mu      sync.Mutex
	reg     *registry
	folders map[string]*folderSlot
	closed  bool
}

// Sidecar file names under ROOT/.mailark.
const (
	sideDirName  = ".mailark"
	metaFile     = "archive.json"
	registryFile = "folders.json"
	lockFile     = "lock"
)

// archiveMeta is ROOT/.mailark/archive.json: what kind of archive this is.
type archiveMeta struct {
	Format  Format    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
}

const archiveVersion = 1

// Open opens the archive named by spec. Unless ReadOnly, it creates the
// archive if missing, takes its lock (waiting up to LockWait) and repairs
// what an interrupted run left: uncommitted messages are removed, a torn
// index line is dropped. Folders are loaded, and repaired, on first use.
func Open(ctx context.Context, spec string, opt Options) (*Archive, error) {
	format, path, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, mailerr.E(mailerr.ErrUsage, err, "archive path %q", path)
	}
	a := &Archive{
		format: format, root: root, side: filepath.Join(root, sideDirName), readOnly: opt.ReadOnly,
		log: opt.Logger, folders: map[string]*folderSlot{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("archive", root)
	if opt.ReadOnly {
		err = a.openReadOnly()
	} else {
		err = a.openWritable(ctx, opt.LockWait)
	}
	if err != nil {
		if a.lock != nil {
			a.lock.Unlock()
		}
		return nil, err
	}
	return a, nil
}

func (a *Archive) openReadOnly() error {
	if _, err := os.Stat(a.root); err != nil {
		return kinded(usageNotArchive, "archive %s does not exist (%v)", a.root, errors.Unwrap(err))
	}
	if err := a.checkMeta(false); err != nil {
		return err
	}
	a.warnPermissions()
	return a.loadRegistry()
}

func (a *Archive) openWritable(ctx context.Context, lockWait time.Duration) error {
	fresh, err := a.checkRoot()
	if err != nil {
		return err
	}
	if err := mkdirAll(a.side); err != nil {
		return a.ioErr(err, "create archive %s", a.root)
	}
	lk, err := acquireLock(ctx, filepath.Join(a.side, lockFile), a.root, lockWait)
	if err != nil {
		return err
	}
	a.lock = lk
	if err := a.checkMeta(true); err != nil {
		return err
	}
	if !fresh {
		a.warnPermissions()
	}
	a.removeTempFiles(a.side)
	return a.loadRegistry()
}

// checkRoot refuses to turn a directory holding other things into an
// archive; it reports whether the archive is new.
func (a *Archive) checkRoot() (fresh bool, err error) {
	st, err := os.Stat(a.root)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, a.ioErr(err, "open archive %s", a.root)
	}
	if !st.IsDir() {
		return false, kinded(usageNotArchive,
			"%s is a file, not an archive directory; mailark archives are directories (give a new path)", a.root)
	}
	if _, err := os.Stat(a.side); err == nil {
		return false, nil
	}
	d, err := os.Open(a.root)
	if err != nil {
		return false, a.ioErr(err, "open archive %s", a.root)
	}
	defer d.Close()
	if names, _ := d.Readdirnames(1); len(names) > 0 {
		return false, kinded(usageNotArchive,
			"%s is not empty and is not a mailark archive; give a new or empty directory", a.root)
	}
	return true, nil
}

// checkMeta reads archive.json, or writes it for a new archive.
func (a *Archive) checkMeta(create bool) error {
	file := filepath.Join(a.side, metaFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return kinded(usageNotArchive, "%s is not a mailark archive (no %s/%s)", a.root, sideDirName, metaFile)
		}
		meta, _ := json.MarshalIndent(archiveMeta{Format: a.format, Version: archiveVersion, Created: time.Now().UTC()}, "", "  ")
		if err := mkdirAll(a.root); err != nil {
			return a.ioErr(err, "create archive %s", a.root)
		}
		if err := writeFileAtomic(file, append(meta, '\n')); err != nil {
			return a.ioErr(err, "create archive %s", a.root)
		}
		return nil
	}
	if err != nil {
		return a.ioErr(err, "open archive %s", a.root)
	}
	var meta archiveMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return a.damaged(fmt.Errorf("%w: %s: %v", ErrCorrupt, file, err), "")
	}
	if meta.Version > archiveVersion {
		return kinded(usageNotArchive, "archive %s was written by a newer mailark (format version %d); upgrade mailark", a.root, meta.Version)
	}
	if meta.Format != a.format {
		return kinded(usageBadSpec, "archive %s is a %s archive; open it as %s:%s", a.root, meta.Format, meta.Format, a.root)
	}
	return nil
}

func (a *Archive) loadRegistry() error {
	reg, err := loadRegistry(filepath.Join(a.side, registryFile), a.format)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return a.ioErr(err, "read archive %s", a.root)
		}
		return a.damaged(fmt.Errorf("%w: %v", ErrCorrupt, err), "")
	}
	a.reg = reg
	return nil
}

// removeTempFiles deletes leftovers of atomic writes a crash interrupted.
func (a *Archive) removeTempFiles(dir string) {
	names, _ := readDirNames(dir)
	for _, n := range names {
		if strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// warnPermissions logs when other users can read the archive.
func (a *Archive) warnPermissions() {
	check := []string{a.root, a.side}
	if reg, err := loadRegistry(filepath.Join(a.side, registryFile), a.format); err == nil {
		for _, rec := range reg.Folders {
			check = append(check, filepath.Join(a.root, filepath.FromSlash(rec.Path)))
		}
	}
	for _, p := range check {
		st, err := os.Stat(p)
		if err == nil && st.Mode().Perm()&0o077 != 0 {
			a.log.Warn(fmt.Sprintf("archive is readable by other users (%s has mode %04o); run: chmod -R go-rwx %s",
				p, st.Mode().Perm(), a.root))
			return
		}
	}
}

// Close commits nothing: it drops what was appended since each folder's
// last Commit and releases the lock.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var err error
	for _, slot := range a.folders {
		<-slot.ready
		if slot.f != nil {
			err = errors.Join(err, slot.f.close())
		}
	}
	if a.lock != nil {
		err = errors.Join(err, a.lock.Unlock())
	}
	return err
}

// Format is the archive's on-disk format.
func (a *Archive) Format() Format { return a.format }

// Root is the archive's absolute path.
func (a *Archive) Root() string { return a.root }

// Folders lists every folder, sorted by name, with committed counts.
// Folders that only hold others are listed with NoSelect.
func (a *Archive) Folders() ([]FolderInfo, error) {
	a.mu.Lock()
	recs := a.reg.sorted()
	a.mu.Unlock()
	out := make([]FolderInfo, 0, len(recs))
	for _, rec := range recs {
		if rec.NoSelect {
			out = append(out, FolderInfo{Name: rec.Name, Path: rec.Path, SpecialUse: rec.SpecialUse, NoSelect: true})
			continue
		}
		f, err := a.Folder(rec.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, f.Info())
	}
	return out, nil
}

// Messages lists a folder's committed messages in index order.
func (a *Archive) Messages(folder string) ([]Meta, error) {
	f, err := a.Folder(folder)
	if err != nil {
		return nil, err
	}
	return f.Entries(), nil
}

// Open streams one message of a folder.
func (a *Archive) Open(folder, key string) (io.ReadCloser, error) {
	f, err := a.Folder(folder)
	if err != nil {
		return nil, err
	}
	return f.Open(key)
}

// Folder returns an existing folder, loading (and, when writable,
// repairing) it on first use. The same *Folder is returned every time.
// Folders load in parallel: a big index loading does not hold up others.
func (a *Archive) Folder(name string) (*Folder, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, fmt.Errorf("archive %s is closed", a.root)
	}
	if slot, ok := a.folders[name]; ok {
		a.mu.Unlock()
		<-slot.ready
		if slot.f != nil {
			return slot.f, nil
		}
		return a.Folder(name) // the load failed; try again
	}
	rec, ok := a.reg.get(name)
	if !ok || rec.NoSelect {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: %q in archive %s", ErrNoFolder, name, a.root)
	}
	slot := &folderSlot{ready: make(chan struct{})}
	a.folders[name] = slot
	a.mu.Unlock()

	f, err := a.loadFolder(rec)
	slot.f = f // published by closing ready; Close waits on it holding a.mu
	close(slot.ready)
	if err != nil {
		a.mu.Lock()
		if a.folders[name] == slot {
			delete(a.folders, name) // a later call retries (e.g. after disk space was freed)
		}
		a.mu.Unlock()
		return nil, err
	}
	return f, nil
}

// FolderNames lists the selectable folders, sorted, from the registry
// alone: unlike Folders it loads no index, so it costs the same for empty
// folders and for folders of 100,000 messages.
func (a *Archive) FolderNames() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, rec := range a.reg.sorted() {
		if !rec.NoSelect {
			out = append(out, rec.Name)
		}
	}
	return out
}

// FolderState is the folder's sync state, read without loading the
// folder's index: a source that learns from the state alone that nothing
// changed never pays for the index (about 0.25 s per 100,000 messages).
// For a folder already loaded it is Folder(name).State().
//
// The state read this way is the last committed one, and it describes
// committed messages only (Commit writes it after the index). Nothing is
// repaired on this path; see SetFolderState for why that is safe.
func (a *Archive) FolderState(name string) (SyncState, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return SyncState{}, fmt.Errorf("archive %s is closed", a.root)
	}
	if slot, ok := a.folders[name]; ok {
		a.mu.Unlock()
		<-slot.ready
		if slot.f != nil {
			return slot.f.State(), nil
		}
		return a.FolderState(name) // it failed to load, or its state was being written
	}
	rec, ok := a.reg.get(name)
	a.mu.Unlock()
	if !ok || rec.NoSelect {
		return SyncState{}, fmt.Errorf("%w: %q in archive %s", ErrNoFolder, name, a.root)
	}
	st, err := readState(a.statePath(rec))
	if err != nil {
		return SyncState{}, a.damaged(err, name)
	}
	return st, nil
}

// SetFolderState writes a folder's sync state durably at once, without
// loading the folder's index. For a folder already loaded it is
// SetState followed by Commit. Like SetState, s must describe committed
// messages only.
//
// Repair (removing what a crashed run appended but never committed)
// happens when a folder is loaded for writing, so a folder only touched
// here may keep such leftovers until its next load. That is safe:
//   - mailark's readers (ls, verify, restore) go through the index, which
//     does not list them, and loading read-only ignores them;
//   - every write of messages or flags loads the folder first, so nothing
//     is ever appended behind an unrepaired tail;
//   - leftovers of an IMAP fetch are messages above the state's last UID,
//     or flag changes made before the state's HIGHESTMODSEQ was advanced,
//     or a rescan under the old UIDVALIDITY: each makes the next run's
//     status differ from the state, so that run loads, and repairs, the
//     folder. A state that matches the server proves there is nothing to
//     repair that a sync would need.
func (a *Archive) SetFolderState(name string, s SyncState) error {
	if a.readOnly {
		return ErrReadOnly
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fmt.Errorf("archive %s is closed", a.root)
	}
	if slot, ok := a.folders[name]; ok {
		a.mu.Unlock()
		<-slot.ready
		if slot.f == nil {
			return a.SetFolderState(name, s)
		}
		slot.f.SetState(s)
		return slot.f.Commit()
	}
	rec, ok := a.reg.get(name)
	if !ok || rec.NoSelect {
		a.mu.Unlock()
		return fmt.Errorf("%w: %q in archive %s", ErrNoFolder, name, a.root)
	}
	// An empty slot holds off a concurrent load (which would read the old
	// state and later write it back) until the new state is on disk.
	slot := &folderSlot{ready: make(chan struct{})}
	a.folders[name] = slot
	a.mu.Unlock()

	err := a.writeState(rec, s)
	close(slot.ready) // before taking a.mu: Close waits on it holding a.mu
	a.mu.Lock()
	if a.folders[name] == slot {
		delete(a.folders, name)
	}
	a.mu.Unlock()
	return err
}

func (a *Archive) statePath(rec folderRecord) string {
	return filepath.Join(a.side, "folders", rec.ID, "state.json")
}

func (a *Archive) writeState(rec folderRecord, s SyncState) error {
	data, err := encodeState(s)
	if err != nil {
		return err
	}
	if err := mkdirAll(filepath.Dir(a.statePath(rec))); err != nil {
		return a.ioErr(err, "write sync state of folder %q", rec.Name)
	}
	if err := writeFileAtomic(a.statePath(rec), data); err != nil {
		return a.ioErr(err, "write sync state of folder %q", rec.Name)
	}
	return nil
}

// SetSpecialUse records a folder's RFC 6154 attribute ("" for none)
// without loading the folder. Recording the attribute it has already
// costs nothing.
func (a *Archive) SetSpecialUse(name, use string) error { return a.setSpecialUse(name, use) }

// folderSlot holds a folder while it loads and after.
type folderSlot struct {
	ready chan struct{} // closed when loading ended
	f     *Folder       // nil if loading failed
}

// CreateFolder returns the folder, creating it (and any missing parent, as
// a NoSelect folder) first. It is idempotent; specialUse, when not empty,
// is recorded. The name is data: its path is derived safely.
func (a *Archive) CreateFolder(name string, specialUse string) (*Folder, error) {
	if err := a.AddFolder(name, specialUse); err != nil {
		return nil, err
	}
	return a.Folder(name)
}

// AddFolder records a folder in the archive, as CreateFolder does, and
// leaves its files to be created by the first Folder call: a caller with
// many folders to create can record them all first (names the archive
// cannot hold fail here) and load each when it gets to it.
func (a *Archive) AddFolder(name string, specialUse string) error {
	return a.AddFolders([]FolderSpec{{Name: name, SpecialUse: specialUse}})[0]
}

// FolderSpec is a folder to record: its name and special use ("" for
// none).
type FolderSpec struct {
	Name, SpecialUse string
}

// AddFolders records several folders as AddFolder does, with one durable
// write of the folder list for all of them (a first backup of an account
// with many folders would otherwise pay a write and two syncs per folder
// before its first message). It returns one error per folder, nil for
// those recorded; a failed write fails them all.
func (a *Archive) AddFolders(specs []FolderSpec) []error {
	errs := make([]error, len(specs))
	if a.readOnly {
		for i := range errs {
			errs[i] = ErrReadOnly
		}
		return errs
	}
	a.mu.Lock()
	changed := false
	for i, sp := range specs {
		_, ch, err := a.reg.ensure(sp.Name, true)
		if err == nil && sp.SpecialUse != "" && a.reg.setSpecialUse(sp.Name, sp.SpecialUse) {
			ch = true
		}
		changed = changed || ch
		if errors.Is(err, ErrBadName) {
			err = mailerr.E(mailerr.ErrUsage, err, "cannot create folder")
		}
		errs[i] = err
	}
	if changed {
		if err := a.reg.save(filepath.Join(a.side, registryFile)); err != nil {
			// Keep memory and disk in step: reload what is on disk.
			if reg, lerr := loadRegistry(filepath.Join(a.side, registryFile), a.format); lerr == nil {
				a.reg = reg
			}
			for i, sp := range specs {
				if errs[i] == nil {
					errs[i] = a.ioErr(err, "create folder %q", sp.Name)
				}
			}
		}
	}
	a.mu.Unlock()
	return errs
}

func (a *Archive) record(name string) (folderRecord, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reg.get(name)
}

func (a *Archive) setSpecialUse(name, use string) error {
	if a.readOnly {
		return ErrReadOnly
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.reg.setSpecialUse(name, use) {
		return nil
	}
	if err := a.reg.save(filepath.Join(a.side, registryFile)); err != nil {
		return a.ioErr(err, "record special use of folder %q", name)
	}
	return nil
}

// Ledger opens the restore ledger for a target account (name it with the
// account's URL without secrets). One Ledger per target may be open.
func (a *Archive) Ledger(target string) (*Ledger, error) {
	if a.readOnly {
		return nil, ErrReadOnly
	}
	if target == "" {
		return nil, mailerr.E(mailerr.ErrUsage, nil, "ledger needs a target name")
	}
	name := escapeComponent(target, a.format)
	if len(name) > maxComponent {
		name = shortenComponent(name)
	}
	return OpenLedger(filepath.Join(a.side, "ledgers", name+".jsonl"))
}

// ioErr classifies a local file-system failure.
func (a *Archive) ioErr(err error, format string, args ...any) error {
	return mailerr.E(mailerr.ErrLocalIO, err, format, args...)
}

// damaged wraps an inconsistency repair cannot fix.
func (a *Archive) damaged(err error, folder string) error {
	if !errors.Is(err, ErrCorrupt) {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
			return a.ioErr(err, "read archive %s", a.root)
		}
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	where := "archive " + a.root
	if folder != "" {
		where = fmt.Sprintf("folder %q of archive %s", folder, a.root)
	}
	return mailerr.E(mailerr.ErrDamaged, err,
		"%s is damaged; move it aside and fetch into a new archive, or restore it from a backup", where)
}

var _ Reader = (*Archive)(nil)
