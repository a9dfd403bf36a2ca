package archive

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/mailark/mailark/internal/mailerr"
)

// ForeignOptions tune how a tree written by another program is read.
type ForeignOptions struct {
	// Mbox is the From-escaping of mbox files (MboxO unless known).
	Mbox MboxVariant
	// IncludeDeleted also returns messages marked deleted (maildir T,
	// X-Status D, Thunderbird's expunged bit) that the client has not yet
	// purged. By default they are left out: the user deleted them.
	IncludeDeleted bool
}

// Foreign reads mail trees other programs write — a single mbox file,
// mutt/neomutt directories of mbox files, Thunderbird folders (mbox files
// plus ".sbd" directories), maildirs, Dovecot/OfflineIMAP Maildir++
// (".Folder.Sub", names in modified UTF-7) and nested maildir trees
// (mbsync SubFolders Verbatim and Legacy) — through the Reader interface.
//
// It never writes to the tree: files are opened read-only, nothing is
// moved from new/ to cur/, no lock or index is created. Folder names are
// UTF-8 with "/" between levels and INBOX spelled "INBOX". Safe for
// concurrent use.
type Foreign struct {
	root    string
	layout  string
	opt     ForeignOptions
	folders []*foreignFolder // sorted by name
	byName  map[string]*foreignFolder
	notes   []string
}

type foreignKind int

const (
	foreignMboxFile foreignKind = iota
	foreignMaildirDir
	foreignContainer // holds other folders only
)

type foreignFolder struct {
	name string
	kind foreignKind
	abs  string // file (mbox) or directory (maildir)
	rel  string // abs relative to the root, "/" separators

	mu       sync.Mutex
	messages int
	bytes    int64
	files    map[string]string // maildir: key → "cur/NAME", from the last scan
}

// OpenForeign opens a foreign mail tree read-only with default options.
func OpenForeign(path string) (Reader, error) {
	return OpenForeignWith(path, ForeignOptions{})
}

// OpenForeignWith detects what path holds and opens it read-only.
func OpenForeignWith(path string, opt ForeignOptions) (*Foreign, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, mailerr.E(mailerr.ErrUsage, err, "cannot open %s", path)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, mailerr.E(mailerr.ErrUsage, err, "cannot open mail folder %s; check the path", path)
	}
	t := &Foreign{root: abs, opt: opt, byName: map[string]*foreignFolder{}}
	switch {
	case st.Mode().IsRegular():
		err = t.openMboxFile(abs)
	case st.IsDir():
		err = t.openDir(abs)
	default:
		err = fmt.Errorf("%s is neither a file nor a directory", path)
	}
	if err != nil {
		return nil, mailerr.E(mailerr.ErrUsage, err, "cannot read %s as a mail archive", path)
	}
	t.finish()
	return t, nil
}

// openMboxFile opens a single mbox file as a tree of one folder named
// after the file ("Sent.mbox" → "Sent").
func (t *Foreign) openMboxFile(abs string) error {
	ok, err := foreignSniffMbox(abs)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s does not start with an mbox From line", abs)
	}
	t.root, t.layout = filepath.Dir(abs), "mbox file"
	name := foreignDecodeUTF7(strings.TrimSuffix(filepath.Base(abs), ".mbox"))
	t.add(foreignCanonicalName([]string{name}), foreignMboxFile, abs)
	return nil
}

func (t *Foreign) openDir(abs string) error {
	if candidates := foreignThunderbirdMailDirs(abs); candidates != nil {
		return fmt.Errorf("this is a Thunderbird profile; give one of its mail directories instead: %s",
			strings.Join(candidates, ", "))
	}
	if foreignIsMaildir(abs) {
		return t.openMaildirRoot(abs)
	}
	t.layout = "mail folder tree"
	if err := t.walk(abs, nil, false); err != nil {
		return err
	}
	if len(t.folders) == 0 {
		return fmt.Errorf("no mbox files or maildirs found under %s", abs)
	}
	return nil
}

// openMaildirRoot opens a directory that is itself a maildir. Dovecot's
// and Courier's Maildir++ (".Sent", ".a.b") and Dovecot's LAYOUT=fs keep
// the inbox in the root with the other folders beside it at top level, so
// a root called Maildir or INBOX, or one with Maildir++ children, is the
// INBOX. Any other maildir given directly ("…/mbsync/Archive") keeps its
// own name, and its subfolders (mbsync Verbatim/Legacy) nest under it.
func (t *Foreign) openMaildirRoot(abs string) error {
	base := filepath.Base(abs)
	lower := strings.ToLower(strings.TrimPrefix(base, "."))
	if lower == "maildir" || lower == "inbox" || lower == "mail" || foreignHasMaildirPPChildren(abs) {
		t.layout = "maildir (Maildir++ / INBOX at the root)"
		t.add("INBOX", foreignMaildirDir, abs)
		return t.walk(abs, nil, true)
	}
	t.layout = "maildir"
	comps := foreignMaildirComponents(base)
	t.add(foreignCanonicalName(comps), foreignMaildirDir, abs)
	return t.walk(abs, comps, true)
}

func foreignHasMaildirPPChildren(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && len(e.Name()) > 1 &&
			foreignIsMaildir(filepath.Join(dir, e.Name())) {
			return true
		}
	}
	return false
}

// foreignMaildirComponents names a maildir directory: a leading dot
// (Maildir++, mbsync Legacy) marks the name, and in it dots separate
// levels; each level is decoded from modified UTF-7 when it is valid.
func foreignMaildirComponents(name string) []string {
	if !strings.HasPrefix(name, ".") {
		return []string{foreignDecodeUTF7(name)}
	}
	parts := strings.Split(name[1:], ".")
	for i, p := range parts {
		parts[i] = foreignDecodeUTF7(p)
	}
	return parts
}

// Files that sit beside mbox files in mail client directories and are
// never mail.
var foreignNotMail = map[string]bool{
	".msf": true, ".dat": true, ".json": true, ".sqlite": true, ".sqlite-wal": true,
	".sqlite-shm": true, ".html": true, ".js": true, ".lock": true, ".tmp": true,
	".bak": true, ".db": true, ".xml": true, ".toc": true, ".plist": true, ".mozlz4": true,
}

// walk collects the folders below dir. parent is the name of the folder
// (or container) dir stands for; inMaildir says dir is itself a maildir,
// whose cur/new/tmp and Dovecot files are not folders.
func (t *Foreign) walk(dir string, parent []string, inMaildir bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	siblings := foreignSiblingMaildirs(dir, entries)
	for _, e := range entries {
		name := e.Name()
		child := filepath.Join(dir, name)
		if inMaildir && (name == "cur" || name == "new" || name == "tmp") {
			continue
		}
		switch {
		case e.IsDir():
			if err := t.walkDir(child, name, parent, siblings); err != nil {
				return err
			}
		case inMaildir || strings.HasPrefix(name, "."):
			// Dovecot's index and uidlist files, hidden files.
		case foreignNotMail[strings.ToLower(filepath.Ext(name))]:
		case foreignRegular(dir, e):
			if err := t.maybeMboxFile(child, name, parent, entries); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Foreign) walkDir(child, name string, parent []string, siblings map[string]bool) error {
	comps := func(c ...string) []string { return append(append([]string{}, parent...), c...) }
	switch {
	case foreignIsMaildir(child):
		var own []string
		if !strings.HasPrefix(name, ".") {
			own = foreignNestDotted(name, siblings)
		} else {
			own = foreignMaildirComponents(name)
		}
		for _, c := range own {
			if c == "" {
				t.notes = append(t.notes, fmt.Sprintf("skipped %s: empty folder name component", child))
				return nil
			}
		}
		full := comps(own...)
		t.add(foreignCanonicalName(full), foreignMaildirDir, child)
		return t.walk(child, full, true)
	case strings.HasPrefix(name, "."):
		return nil // .notmuch, .git, .mailark, ...: not mail
	case strings.HasSuffix(name, ".sbd"): // Thunderbird: the subfolders of the mbox file beside it
		return t.walk(child, comps(foreignDecodeUTF7(strings.TrimSuffix(name, ".sbd"))), false)
	case strings.HasSuffix(name, ".mbox"): // Apple Mail export: Folder.mbox/mbox
		full := comps(foreignDecodeUTF7(strings.TrimSuffix(name, ".mbox")))
		if inner := filepath.Join(child, "mbox"); foreignIsRegularFile(inner) {
			if ok, _ := foreignSniffMbox(inner); ok {
				t.add(foreignCanonicalName(full), foreignMboxFile, inner)
			}
		}
		return t.walkSubdirs(child, full)
	default: // a plain directory holding folders (mutt, mbsync Verbatim levels)
		return t.walk(child, comps(foreignDecodeUTF7(name)), false)
	}
}

// walkSubdirs walks only the directories in dir (Apple Mail keeps a
// folder's own messages in the file "mbox" beside its subfolders).
func (t *Foreign) walkSubdirs(dir string, parent []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := t.walkDir(filepath.Join(dir, e.Name()), e.Name(), parent, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func foreignIsRegularFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// foreignSiblingMaildirs returns the names of the maildirs in a
// directory without a leading dot, for foreignNestDotted. It only looks
// when some name has a dot in it.
func foreignSiblingMaildirs(dir string, entries []fs.DirEntry) map[string]bool {
	dotted := false
	for _, e := range entries {
		dotted = dotted || (e.IsDir() && strings.Contains(strings.TrimPrefix(e.Name(), "."), "."))
	}
	if !dotted {
		return nil
	}
	set := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && foreignIsMaildir(filepath.Join(dir, e.Name())) {
			set[e.Name()] = true
		}
	}
	return set
}

// foreignNestDotted names a maildir directory without a leading dot.
// OfflineIMAP stores "INBOX/Sent" as a directory "INBOX.Sent" next to
// "INBOX"; mbsync stores a folder "v1.2" as "v1.2". A dot is therefore
// taken as a level separator only where the part before it is itself a
// maildir beside this one.
func foreignNestDotted(name string, siblings map[string]bool) []string {
	parts := strings.Split(name, ".")
	out := []string{foreignDecodeUTF7(parts[0])}
	prefix := parts[0]
	for _, p := range parts[1:] {
		if siblings[prefix] && prefix != "" && p != "" {
			out = append(out, foreignDecodeUTF7(p))
		} else {
			out[len(out)-1] = out[len(out)-1] + "." + foreignDecodeUTF7(p)
		}
		prefix += "." + p
	}
	return out
}

// maybeMboxFile adds a file that holds mbox data. Empty files count when
// they are clearly folders: a ".mbox" name, or Thunderbird's ".msf" index
// beside them.
func (t *Foreign) maybeMboxFile(path, name string, parent []string, entries []fs.DirEntry) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		if !strings.HasSuffix(name, ".mbox") && !foreignHasEntry(entries, name+".msf") {
			return nil
		}
	} else if ok, err := foreignSniffMbox(path); err != nil || !ok {
		return err
	}
	comps := append(append([]string{}, parent...), foreignDecodeUTF7(strings.TrimSuffix(name, ".mbox")))
	t.add(foreignCanonicalName(comps), foreignMboxFile, path)
	return nil
}

func foreignHasEntry(entries []fs.DirEntry, name string) bool {
	for _, e := range entries {
		if e.Name() == name {
			return true
		}
	}
	return false
}

// foreignSniffMbox reports whether a file starts (after blank lines) with
// "From ", the mark of every mbox variant. Empty files are mbox too.
func foreignSniffMbox(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 512)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, err
	}
	b := bytes.TrimLeft(buf[:n], "\r\n")
	if n == 0 {
		return true, nil
	}
	return bytes.HasPrefix(b, foreignFromPrefix), nil
}

// foreignThunderbirdMailDirs recognises a Thunderbird profile directory
// (prefs.js beside Mail/ or ImapMail/) and lists its account directories,
// one of which the user meant.
func foreignThunderbirdMailDirs(dir string) []string {
	if !foreignIsRegularFile(filepath.Join(dir, "prefs.js")) {
		return nil
	}
	var out []string
	for _, top := range []string{"Mail", "ImapMail"} {
		entries, err := os.ReadDir(filepath.Join(dir, top))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, filepath.Join(dir, top, e.Name()))
			}
		}
	}
	if out == nil {
		return nil
	}
	return out
}

// add records a folder. Two on-disk folders that come out with one name
// ("Sent" and "Sent.mbox", "INBOX" and "Inbox") are both kept: the later
// one gets " (2)" appended, and a note says so.
func (t *Foreign) add(name string, kind foreignKind, abs string) {
	rel, err := filepath.Rel(t.root, abs)
	if err != nil {
		rel = abs
	}
	rel = filepath.ToSlash(rel)
	unique := name
	for i := 2; t.byName[unique] != nil; i++ {
		unique = fmt.Sprintf("%s (%d)", name, i)
	}
	if unique != name {
		t.notes = append(t.notes, fmt.Sprintf("%s and %s both map to folder %q; the second is called %q",
			t.byName[name].rel, rel, name, unique))
	}
	f := &foreignFolder{name: unique, kind: kind, abs: abs, rel: rel}
	t.byName[unique] = f
	t.folders = append(t.folders, f)
}

// finish adds containers for missing parent levels and sorts the folders.
func (t *Foreign) finish() {
	for _, f := range append([]*foreignFolder(nil), t.folders...) {
		parts := strings.Split(f.name, "/")
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], "/")
			if t.byName[parent] == nil {
				c := &foreignFolder{name: parent, kind: foreignContainer}
				t.byName[parent] = c
				t.folders = append(t.folders, c)
			}
		}
	}
	sort.Slice(t.folders, func(i, j int) bool { return t.folders[i].name < t.folders[j].name })
}

// Layout says what kind of tree was detected ("maildir", "mbox file", ...).
func (t *Foreign) Layout() string { return t.layout }

// Root is the directory the folder paths are relative to.
func (t *Foreign) Root() string { return t.root }

// Notes are remarks from opening the tree (renamed duplicates, skipped
// directories) worth showing the user.
func (t *Foreign) Notes() []string { return append([]string(nil), t.notes...) }

// Folders lists the folders, parents before children. Messages and Bytes
// are known once Messages has read the folder; before that they are 0.
func (t *Foreign) Folders() ([]FolderInfo, error) {
	out := make([]FolderInfo, 0, len(t.folders))
	for _, f := range t.folders {
		info := FolderInfo{Name: f.name, Path: f.rel, NoSelect: f.kind == foreignContainer}
		if !info.NoSelect {
			info.SpecialUse = SpecialUseByName(f.name)
		}
		f.mu.Lock()
		info.Messages, info.Bytes = f.messages, f.bytes
		f.mu.Unlock()
		out = append(out, info)
	}
	return out, nil
}

func (t *Foreign) folder(name string) (*foreignFolder, error) {
	f := t.byName[name]
	if f == nil || f.kind == foreignContainer {
		return nil, fmt.Errorf("folder %q: %w", name, ErrNoFolder)
	}
	return f, nil
}

// Messages reads a folder once and returns its messages in file order
// (mbox) or key order (maildir), without those marked deleted unless
// ForeignOptions.IncludeDeleted.
func (t *Foreign) Messages(folder string) ([]Meta, error) {
	f, err := t.folder(folder)
	if err != nil {
		return nil, err
	}
	var metas []Meta
	var total int64
	keep := func(m Meta, deleted bool) {
		if deleted && !t.opt.IncludeDeleted {
			return
		}
		metas = append(metas, m)
		total += m.Size
	}
	var files map[string]string
	switch f.kind {
	case foreignMboxFile:
		err = foreignScanMbox(f.abs, t.opt, keep)
	case foreignMaildirDir:
		files, err = foreignScanMaildir(f.abs, keep)
	}
	if err != nil {
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "cannot read folder %s", folder)
	}
	f.mu.Lock()
	f.messages, f.bytes, f.files = len(metas), total, files
	f.mu.Unlock()
	return metas, nil
}

// foreignScanMaildir reads every message of a maildir once and returns
// the key → file map Open uses.
func foreignScanMaildir(dir string, keep func(Meta, bool)) (map[string]string, error) {
	files, err := foreignListMaildir(dir)
	if err != nil {
		return nil, err
	}
	keywords := foreignDovecotKeywords(dir)
	byKey := make(map[string]string, len(files))
	for _, mf := range files {
		size, sum, h, err := foreignScanMaildirFile(filepath.Join(dir, mf.rel))
		if os.IsNotExist(err) {
			continue // renamed or removed by a running client since the listing
		}
		if err != nil {
			return nil, err
		}
		flags, deleted := foreignMaildirFlags(mf.info, keywords)
		byKey[mf.key] = mf.rel
		keep(Meta{Key: mf.key, Size: size, SHA256: sum, MessageID: h.messageID, Flags: flags, Date: mf.mtime}, deleted)
	}
	return byKey, nil
}

// Open streams one message: for mbox the message as Messages measured it,
// for maildir the file as it is.
func (t *Foreign) Open(folder, key string) (io.ReadCloser, error) {
	f, err := t.folder(folder)
	if err != nil {
		return nil, err
	}
	if f.kind == foreignMboxFile {
		return foreignOpenMbox(f.abs, key, t.opt.Mbox)
	}
	return f.openMaildir(key)
}

// openMaildir opens a maildir message by key. The file may have been
// renamed since the last scan (a client changed its flags or moved it
// from new/ to cur/), so a miss re-lists the folder once.
func (f *foreignFolder) openMaildir(key string) (io.ReadCloser, error) {
	f.mu.Lock()
	rel, ok := f.files[key]
	f.mu.Unlock()
	if ok {
		r, err := os.Open(filepath.Join(f.abs, rel))
		if err == nil {
			return r, nil
		}
		if !os.IsNotExist(err) {
			return nil, err
		}
	}
	files, err := foreignListMaildir(f.abs)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]string, len(files))
	for _, mf := range files {
		byKey[mf.key] = mf.rel
	}
	f.mu.Lock()
	f.files = byKey
	f.mu.Unlock()
	rel, ok = byKey[key]
	if !ok {
		return nil, fmt.Errorf("message %s in %s: %w", key, f.name, ErrNoMessage)
	}
	return os.Open(filepath.Join(f.abs, rel))
}

// Close releases nothing: a foreign tree is read file by file.
func (t *Foreign) Close() error { return nil }

var _ Reader = (*Foreign)(nil)
