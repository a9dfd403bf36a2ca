package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maildirStore keeps a folder as a maildir: DIR/{cur,new,tmp}. A message is
// written to tmp/KEY, given its INTERNALDATE as mtime and renamed to
// cur/KEY,S=SIZE:2,FLAGS, so a reader never sees half a message. Flags are
// the maildir letters (D F P R S T) plus Dovecot keyword letters a–z from
// the folder's dovecot-keywords file ($Forwarded is both P, for mutt, and
// a keyword, for Dovecot); the index keeps the full set.
type maildirStore struct {
	env      storeEnv
	dir      string
	readOnly bool

	mu       sync.Mutex        // guards files (open may rescan)
	files    map[string]string // key -> "cur/NAME" or "new/NAME"
	pending  []string          // keys appended since the last sync
	dirDirty bool              // renames in cur/ since the last sync
	keywords *keywordTable
	buf      []byte
}

var (
	keySeq  atomic.Uint64
	keyPID  = sync.OnceValue(os.Getpid) // os.Getpid is a system call each time
	keyHost = sync.OnceValue(func() string {
		h, _ := os.Hostname()
		return sanitizeHost(h)
	})
)

// ourKey matches the keys mailark generates, and nothing Dovecot, mbsync,
// OfflineIMAP or mutt generate: only such files are removed by repair.
var ourKey = regexp.MustCompile(`^[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+R[0-9a-f]{8}\.`)

// newMaildirKey returns a unique key: seconds, microseconds, pid, a
// per-process counter and random bits, then the host, as the maildir
// convention has it.
func newMaildirKey() string {
	now := time.Now()
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, keyPID(),
		keySeq.Add(1), randomHex(4), keyHost())
}

func sanitizeHost(h string) string {
	if h == "" {
		return "localhost"
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, h)
}

// keyOf extracts the unique part of a maildir file name: everything before
// the info (":2,…") and before Dovecot-style ",S=…" fields.
func keyOf(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	if i := strings.IndexByte(name, ','); i >= 0 {
		name = name[:i]
	}
	return name
}

func newMaildirStore(env storeEnv, dir string, readOnly bool) *maildirStore {
	return &maildirStore{env: env, dir: dir, readOnly: readOnly, files: map[string]string{},
		keywords: &keywordTable{path: filepath.Join(dir, "dovecot-keywords")}}
}

func (s *maildirStore) prepare() error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := mkdirAll(filepath.Join(s.dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

func (s *maildirStore) reconcile(idx *index, repair bool) error {
	if err := s.keywords.load(); err != nil {
		return err
	}
	var stray, foreign int
	for _, sub := range []string{"cur", "new"} {
		names, err := readDirNames(filepath.Join(s.dir, sub))
		if err != nil {
			return err
		}
		for _, name := range names {
			key := keyOf(name)
			rel := sub + "/" + name
			if i, ok := idx.byKey[key]; ok {
				if _, dup := s.files[key]; dup {
					s.env.log.Warn("two files for one message; using the first", "folder", s.env.folder, "file", rel)
					continue
				}
				s.files[key] = rel
				if repair && sub == "cur" {
					if err := s.setFlags(key, idx.entryFlags(i)); err != nil {
						return err
					}
				}
				continue
			}
			if !ourKey.MatchString(key) {
				foreign++
				continue
			}
			stray++
			if repair {
				// Written but never committed: the source sends it again.
				if err := os.Remove(filepath.Join(s.dir, rel)); err != nil {
					return err
				}
			}
		}
	}
	if repair {
		if err := s.clearTmp(); err != nil {
			return err
		}
	}
	s.dirDirty = false
	if stray > 0 {
		s.env.log.Debug("uncommitted messages removed", "folder", s.env.folder, "count", stray, "repair", repair)
	}
	if foreign > 0 {
		s.env.log.Warn("files not written by mailark are ignored", "folder", s.env.folder, "count", foreign)
	}
	var missing int
	for i := range idx.entries {
		if _, ok := s.files[idx.entries[i].key]; !ok {
			idx.markGone(int32(i))
			missing++
		}
	}
	if missing > 0 {
		s.env.log.Warn("indexed messages are missing from disk (deleted by another program?); they are treated as absent",
			"folder", s.env.folder, "count", missing)
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1) // unsorted, no lstat: fast on 100,000 files
}

func (s *maildirStore) clearTmp() error {
	tmp := filepath.Join(s.dir, "tmp")
	names, err := readDirNames(tmp)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(tmp, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (s *maildirStore) append(src io.Reader, msg *pendingMsg) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if s.buf == nil {
		s.buf = make([]byte, 256<<10)
	}
	key := newMaildirKey()
	tmp := filepath.Join(s.dir, "tmp", key)
	f, err := createExclusive(tmp)
	if err != nil {
		return err
	}
	size, err := copyCoalesced(f, src, s.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp, msg.date, msg.date) // mtime is INTERNALDATE for Dovecot and mutt
	}
	var name string
	if err == nil {
		name, err = s.fileName(key, size, msg.flags)
	}
	if err == nil {
		err = renameFile(tmp, filepath.Join(s.dir, "cur", name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	msg.key = key
	s.mu.Lock()
	s.files[key] = "cur/" + name
	s.mu.Unlock()
	s.pending = append(s.pending, key)
	return nil
}

// copyCoalesced copies src to w through buf, filling buf before each
// write. A network literal arrives in reads of a few KB (what the
// connection's bufio.Reader holds); writing each one on its own costs a
// write(2) per chunk, while most messages fit buf and so take one. Any
// error of src other than io.EOF is returned as is.
func copyCoalesced(w io.Writer, src io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, rerr := fill(src, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// fill reads into buf until it is full or src fails; unlike io.ReadFull
// it passes src's errors through unchanged (io.EOF included).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// fileName renders KEY,S=SIZE:2,LETTERS. Flags without a letter (a 27th
// keyword, one that is not an atom) live in the index only.
func (s *maildirStore) fileName(key string, size int64, flags []string) (string, error) {
	letters, err := s.letters(flags)
	if err != nil {
		return "", err
	}
	return key + ",S=" + strconv.FormatInt(size, 10) + ":2," + letters, nil
}

var flagLetters = map[string]byte{
	FlagDraft: 'D', FlagFlagged: 'F', FlagForwarded: 'P', FlagAnswered: 'R', FlagSeen: 'S', FlagDeleted: 'T',
}

func (s *maildirStore) letters(flags []string) (string, error) {
	var out []byte
	for _, f := range flags {
		if l, ok := flagLetters[f]; ok {
			out = append(out, l)
			if f != FlagForwarded {
				continue
			}
			// Dovecot ignores P: $Forwarded also gets a keyword letter.
		}
		if strings.HasPrefix(f, `\`) || !isAtom(f) {
			continue
		}
		l, ok, err := s.keywords.letter(f, !s.readOnly)
		if err != nil {
			return "", err
		}
		if ok {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return string(slices.Compact(out)), nil
}

func (s *maildirStore) setFlags(key string, flags []string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	rel, ok := s.files[key]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoMessage, key)
	}
	size := sizeFromName(rel)
	if size < 0 {
		st, err := os.Stat(filepath.Join(s.dir, rel))
		if err != nil {
			return err
		}
		size = st.Size()
	}
	name, err := s.fileName(key, size, flags)
	if err != nil {
		return err
	}
	want := "cur/" + name
	if want == rel {
		return nil
	}
	if err := os.Rename(filepath.Join(s.dir, rel), filepath.Join(s.dir, want)); err != nil {
		return err
	}
	s.mu.Lock()
	s.files[key] = want
	s.mu.Unlock()
	s.dirDirty = true
	return nil
}

// sizeFromName reads S=SIZE from a file name; -1 when absent.
func sizeFromName(rel string) int64 {
	name := filepath.Base(rel)
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	for _, field := range strings.Split(name, ",")[1:] {
		if v, ok := strings.CutPrefix(field, "S="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

func (s *maildirStore) startSync() (func() error, func(bool), error) {
	if len(s.pending) == 0 && !s.dirDirty {
		return nil, nil, nil
	}
	keys, dirDirty := s.pending, s.dirDirty
	s.pending, s.dirDirty = nil, false
	paths := make([]string, 0, len(keys))
	s.mu.Lock()
	for _, k := range keys {
		paths = append(paths, filepath.Join(s.dir, s.files[k]))
	}
	s.mu.Unlock()
	cur := filepath.Join(s.dir, "cur")
	return func() error { return syncFiles(paths, cur) }, func(ok bool) {
		if !ok {
			s.pending = append(keys, s.pending...)
			s.dirDirty = s.dirDirty || dirDirty
		}
	}, nil
}

func (s *maildirStore) rollback() error {
	for _, k := range s.pending {
		s.mu.Lock()
		rel := s.files[k]
		delete(s.files, k)
		s.mu.Unlock()
		if err := os.Remove(filepath.Join(s.dir, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	s.pending = s.pending[:0]
	return nil
}

func (s *maildirStore) open(e *entry) (io.ReadCloser, error) {
	s.mu.Lock()
	rel, ok := s.files[e.key]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s in folder %q", ErrNoMessage, e.key, s.env.folder)
	}
	f, err := os.Open(filepath.Join(s.dir, rel))
	if errors.Is(err, fs.ErrNotExist) {
		// Renamed since we looked (flags changed by a writer, or moved
		// from new/ to cur/ by a mail client): look again.
		if rel, err = s.find(e.key); err == nil {
			f, err = os.Open(filepath.Join(s.dir, rel))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open message %s of folder %q: %w", e.key, s.env.folder, err)
	}
	return newVerifyingReader(f, f, e, s.env.folder), nil
}

// find looks for the file of key in cur/ and new/.
func (s *maildirStore) find(key string) (string, error) {
	for _, sub := range []string{"cur", "new"} {
		names, err := readDirNames(filepath.Join(s.dir, sub))
		if err != nil {
			return "", err
		}
		for _, n := range names {
			if keyOf(n) == key {
				rel := sub + "/" + n
				s.mu.Lock()
				s.files[key] = rel
				s.mu.Unlock()
				return rel, nil
			}
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNoMessage, key)
}

func (s *maildirStore) afterCommit(*index) error { return nil }

func (s *maildirStore) close() error { return nil }

// keywordTable is Dovecot's dovecot-keywords file: "N name" lines, where
// keyword N is the letter 'a'+N in file names. At most 26 keywords have a
// letter; the index keeps any others.
type keywordTable struct {
	path   string
	names  []string
	loaded bool
}

func (t *keywordTable) load() error {
	data, err := os.ReadFile(t.path)
	t.loaded = true
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	t.names = nil
	for _, line := range strings.Split(string(data), "\n") {
		num, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n >= 26 || name == "" {
			continue
		}
		for len(t.names) <= n {
			t.names = append(t.names, "")
		}
		t.names[n] = name
	}
	return nil
}

// letter returns kw's letter, adding kw to the file (written atomically,
// before any message file uses the letter) when allocate is set.
func (t *keywordTable) letter(kw string, allocate bool) (byte, bool, error) {
	if !t.loaded {
		if err := t.load(); err != nil {
			return 0, false, err
		}
	}
	for i, n := range t.names {
		if n == kw {
			return byte('a' + i), true, nil
		}
	}
	if !allocate || len(t.names) >= 26 {
		return 0, false, nil
	}
	t.names = append(t.names, kw)
	var b strings.Builder
	for i, n := range t.names {
		if n != "" {
			fmt.Fprintf(&b, "%d %s\n", i, n)
		}
	}
	if err := writeFileAtomic(t.path, []byte(b.String())); err != nil {
		t.names = t.names[:len(t.names)-1]
		return 0, false, err
	}
	return byte('a' + len(t.names) - 1), true, nil
}
