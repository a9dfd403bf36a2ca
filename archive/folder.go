package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Folder is one folder of an open archive. It is safe for use by one
// goroutine at a time; different folders can be written in parallel.
//
// Writes are staged: Append puts the message on disk where no reader
// counts it yet, SetFlags and SetState are remembered, and Commit makes
// them durable in this order: message data, index records, sync state.
// Lookups (Entries, ByUID, ...) see committed messages only.
type Folder struct {
	a       *Archive
	name    string
	relPath string
	sideDir string
	st      store
	idx     *index
	ixf     *indexFile

	// commitMu lets one Commit run at a time. It is taken before mu and
	// held for the whole Commit, while mu is released during the syncs:
	// appends go on meanwhile. Whatever must not change under a running
	// Commit (flag changes, which rename maildir files; Close) takes it
	// too.
	commitMu    sync.Mutex
	mu          sync.Mutex
	state       SyncState
	stateDirty  bool
	staged      []record
	stagedAdds  map[string]int  // key -> position in staged, for SetFlags on uncommitted messages
	stagedFlags []string        // keys of committed messages whose flags changed since Commit
	stagedUIDs  map[string]bool // keys of committed messages with a staged uid record
	hashBuf     hash.Hash
	headBuf     []byte
	closed      bool
}

// loadFolder opens the folder of rec: creates what is missing (writable),
// loads its index and state, and reconciles the disk with the index.
func (a *Archive) loadFolder(rec folderRecord) (*Folder, error) {
	f := &Folder{
		a:          a,
		name:       rec.Name,
		relPath:    rec.Path,
		sideDir:    filepath.Join(a.side, "folders", rec.ID),
		stagedAdds: map[string]int{},
		stagedUIDs: map[string]bool{},
	}
	env := storeEnv{log: a.log.With("folder", rec.Name), folder: rec.Name, lostDir: filepath.Join(a.side, "lost+found")}
	abs := filepath.Join(a.root, filepath.FromSlash(rec.Path))
	if a.format == Mbox {
		f.st = newMboxStore(env, abs, a.readOnly)
	} else {
		f.st = newMaildirStore(env, abs, a.readOnly)
	}
	repair := !a.readOnly
	if repair {
		if err := mkdirAll(f.sideDir); err != nil {
			return nil, a.ioErr(err, "create sidecar of folder %q", rec.Name)
		}
		if err := f.st.prepare(); err != nil {
			return nil, a.ioErr(err, "create folder %q", rec.Name)
		}
		a.removeTempFiles(f.sideDir)
		if a.format == Maildir {
			a.removeTempFiles(abs) // of dovecot-keywords
		}
	}
	idx, ixf, err := loadIndex(filepath.Join(f.sideDir, "index.jsonl"), repair)
	if err != nil {
		f.st.close()
		return nil, a.damaged(err, rec.Name)
	}
	f.idx, f.ixf = idx, ixf
	if err := f.loadState(); err != nil {
		f.closeFiles()
		return nil, a.damaged(err, rec.Name)
	}
	if err := f.st.reconcile(idx, repair); err != nil {
		f.closeFiles()
		if errors.Is(err, ErrCorrupt) {
			return nil, a.damaged(err, rec.Name)
		}
		return nil, a.ioErr(err, "check folder %q against its index", rec.Name)
	}
	return f, nil
}

func (f *Folder) statePath() string { return filepath.Join(f.sideDir, "state.json") }

func (f *Folder) loadState() (err error) {
	f.state, err = readState(f.statePath())
	return err
}

// readState reads a folder's state.json; a missing file is the zero
// state (a folder never synced).
func readState(file string) (SyncState, error) {
	var s SyncState
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return SyncState{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, file, err)
	}
	var ok1, ok2, ok3 bool
	s.Source, ok1 = decodeLossless(s.Source)
	s.ServerName, ok2 = decodeLossless(s.ServerName)
	s.Delimiter, ok3 = decodeLossless(s.Delimiter)
	if !ok1 || !ok2 || !ok3 {
		return SyncState{}, fmt.Errorf("%w: %s: bad encoded string", ErrCorrupt, file)
	}
	if len(s.UIDLAliases) > 0 {
		aliases := make(map[string]string, len(s.UIDLAliases))
		for k, v := range s.UIDLAliases {
			dk, ok1 := decodeLossless(k)
			dv, ok2 := decodeLossless(v)
			if !ok1 || !ok2 {
				return SyncState{}, fmt.Errorf("%w: %s: bad encoded UIDL", ErrCorrupt, file)
			}
			aliases[dk] = dv
		}
		s.UIDLAliases = aliases
	}
	return s, nil
}

// encodeState returns state.json's content.
func encodeState(s SyncState) ([]byte, error) {
	s.Source, s.ServerName, s.Delimiter = encodeLossless(s.Source), encodeLossless(s.ServerName), encodeLossless(s.Delimiter)
	if len(s.UIDLAliases) > 0 {
		aliases := make(map[string]string, len(s.UIDLAliases))
		for k, v := range s.UIDLAliases {
			aliases[encodeLossless(k)] = encodeLossless(v)
		}
		s.UIDLAliases = aliases
	}
	data, err := json.MarshalIndent(s, "", "  ")
	return append(data, '\n'), err
}

// Info describes the folder as committed.
func (f *Folder) Info() FolderInfo {
	rec, _ := f.a.record(f.name) // before f.mu: the archive lock comes first
	f.mu.Lock()
	defer f.mu.Unlock()
	return FolderInfo{Name: f.name, Path: f.relPath, SpecialUse: rec.SpecialUse, Messages: f.idx.count, Bytes: f.idx.bytes}
}

// SetSpecialUse records the folder's RFC 6154 attribute ("" for none).
func (f *Folder) SetSpecialUse(use string) error { return f.a.setSpecialUse(f.name, use) }

// State is the folder's sync state, including a SetState not yet committed.
func (f *Folder) State() SyncState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// SetState stages a new sync state; the next Commit writes it after the
// messages appended before it are durable.
func (f *Folder) SetState(s SyncState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = s
	f.stateDirty = true
}

// Append streams one message into the folder and stages it for Commit. It
// reads r to EOF; an error from r leaves nothing behind. Date zero means
// the time of the topmost Received header, else the Date header, else now.
func (f *Folder) Append(r io.Reader, info AppendInfo) (Meta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable(); err != nil {
		return Meta{}, err
	}
	if f.headBuf == nil {
		f.headBuf = make([]byte, headSize)
		f.hashBuf = sha256.New()
	}
	head, err := readHead(r, f.headBuf)
	if err != nil {
		return Meta{}, fmt.Errorf("append to folder %q: reading message: %w", f.name, err)
	}
	hi := parseHeadFields(head, info.Date.IsZero())
	date := info.Date
	if date.IsZero() {
		date = hi.date
	}
	if date.IsZero() {
		date = time.Now()
	}
	f.hashBuf.Reset()
	counter := &countingWriter{w: f.hashBuf}
	src := io.TeeReader(io.MultiReader(bytes.NewReader(head), r), counter)
	msg := &pendingMsg{date: date, flags: normalizeFlags(info.Flags)}
	if err := f.st.append(src, msg); err != nil {
		if errors.Is(err, ErrReadOnly) {
			return Meta{}, err
		}
		return Meta{}, f.a.ioErr(err, "append to folder %q", f.name)
	}
	var sum [32]byte
	f.hashBuf.Sum(sum[:0])
	rec := record{
		Op: opAdd, Key: msg.key, Size: counter.n, SHA: hex.EncodeToString(sum[:]), MID: hi.messageID,
		Flags: msg.flags, Date: formatDate(date), UID: info.UID, UIDL: info.UIDL, Added: time.Now().Unix(),
		Off: msg.loc.off, Pre: msg.loc.pre, Esc: msg.loc.esc, Disk: msg.loc.disk,
	}
	f.stagedAdds[rec.Key] = len(f.staged)
	f.staged = append(f.staged, rec)
	return Meta{
		Key: rec.Key, Size: rec.Size, SHA256: rec.SHA, MessageID: rec.MID, Flags: rec.Flags,
		Date: date, UID: rec.UID, UIDL: rec.UIDL, Added: time.Unix(rec.Added, 0).UTC(),
	}, nil
}

// dateFromHeader is the delivery time the message itself carries: the
// topmost Received header's date, else its Date header.
func dateFromHeader(received, date string) time.Time {
	if i := strings.LastIndexByte(received, ';'); i >= 0 {
		if t, err := mail.ParseDate(strings.TrimSpace(received[i+1:])); err == nil {
			return t
		}
	}
	if t, err := mail.ParseDate(strings.TrimSpace(date)); err == nil {
		return t
	}
	return time.Time{}
}

// SetFlags replaces a message's flags. Maildir renames the file at once;
// the index learns the new flags at the next Commit.
func (f *Folder) SetFlags(key string, flags []string) error {
	f.commitMu.Lock() // a message being committed is in neither staging nor index
	defer f.commitMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable(); err != nil {
		return err
	}
	flags = normalizeFlags(flags)
	if pos, ok := f.stagedAdds[key]; ok {
		if err := f.st.setFlags(key, flags); err != nil {
			return f.a.ioErr(err, "set flags in folder %q", f.name)
		}
		f.staged[pos].Flags = flags
		return nil
	}
	if _, ok := f.idx.lookup(f.idx.byKey, key); !ok {
		return fmt.Errorf("%w: %s in folder %q", ErrNoMessage, key, f.name)
	}
	if err := f.st.setFlags(key, flags); err != nil {
		return f.a.ioErr(err, "set flags in folder %q", f.name)
	}
	f.staged = append(f.staged, record{Op: opFlags, Key: key, Flags: flags})
	f.stagedFlags = append(f.stagedFlags, key)
	return nil
}

// SetUID records that the message's source now knows it by another UID
// (0: by none). An IMAP server that changes a folder's UIDVALIDITY
// renumbers its messages; once a rescan has matched them, this rebinds
// the archived copies so that ByUID, and with it flag sync, finds them
// again. Staged like SetFlags: ByUID sees the new UID after the next
// Commit, which writes it to the index as a record of its own, so a crash
// leaves either the old binding or the new one.
func (f *Folder) SetUID(key string, uid uint32) error {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable(); err != nil {
		return err
	}
	if pos, ok := f.stagedAdds[key]; ok {
		f.staged[pos].UID = uid
		return nil
	}
	i, ok := f.idx.lookup(f.idx.byKey, key)
	if !ok {
		return fmt.Errorf("%w: %s in folder %q", ErrNoMessage, key, f.name)
	}
	if f.idx.entries[i].uid == uid && !f.stagedUIDs[key] {
		return nil // already bound: a redone rescan writes nothing
	}
	f.staged = append(f.staged, record{Op: opUID, Key: key, UID: uid})
	f.stagedUIDs[key] = true
	return nil
}

// Commit makes everything staged durable: first the message data, then the
// index records that make those messages count, then the sync state. A
// crash at any point leaves the previous commit intact; what follows it is
// removed by the next Open.
//
// The syncs run without the folder's lock: Append may add messages while
// a Commit runs; they belong to the next one.
func (f *Folder) Commit() error {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.mu.Lock()
	if err := f.writable(); err != nil {
		f.mu.Unlock()
		return err
	}
	if len(f.staged) == 0 && !f.stateDirty {
		f.mu.Unlock()
		return nil
	}
	syncData, finish, err := f.st.startSync()
	if err != nil {
		f.mu.Unlock()
		return f.a.ioErr(err, "commit folder %q: syncing messages", f.name)
	}
	c := f.takeStaged()
	f.mu.Unlock()

	if syncData != nil {
		err = syncData()
	}
	dataErr := err
	if err == nil && len(c.records) > 0 {
		if err = f.ixf.appendRecords(c.records); err != nil {
			err = f.a.ioErr(err, "commit folder %q: writing index", f.name)
		}
	} else if err != nil {
		err = f.a.ioErr(err, "commit folder %q: syncing messages", f.name)
	}
	var stateErr error
	if err == nil && c.stateDirty {
		stateErr = f.writeState(c.state)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if finish != nil {
		finish(dataErr == nil)
	}
	if err != nil {
		f.unTake(c)
		return err
	}
	for i := range c.records {
		if err := f.idx.apply(&c.records[i]); err != nil {
			// The records were just built by this Folder; this is a bug.
			return fmt.Errorf("commit folder %q: %w", f.name, err)
		}
	}
	if len(c.records) > 0 {
		if err := f.st.afterCommit(f.idx); err != nil {
			// The commit stands; only other programs' view of some
			// flags lags until the next change.
			f.a.log.Warn("cannot update flags in the mail files", "folder", f.name, "err", err)
		}
	}
	if stateErr != nil {
		f.stateDirty = true
		return stateErr
	}
	return nil
}

// commitBatch is what one Commit makes durable, taken out of the staging
// area under the lock.
type commitBatch struct {
	records    []record
	flagKeys   []string
	uidKeys    map[string]bool
	state      SyncState
	stateDirty bool
}

// takeStaged empties the staging area into a batch. f.mu is held.
func (f *Folder) takeStaged() commitBatch {
	c := commitBatch{records: f.staged, flagKeys: f.stagedFlags, uidKeys: f.stagedUIDs,
		state: f.state, stateDirty: f.stateDirty}
	f.staged, f.stagedFlags, f.stateDirty = nil, nil, false
	f.stagedAdds, f.stagedUIDs = map[string]int{}, map[string]bool{}
	return c
}

// unTake puts a failed batch back in front of what was staged since, so
// that a later Commit retries it and Close rolls it back. f.mu is held.
func (f *Folder) unTake(c commitBatch) {
	f.staged = append(c.records, f.staged...)
	f.stagedFlags = append(c.flagKeys, f.stagedFlags...)
	for k := range c.uidKeys {
		f.stagedUIDs[k] = true
	}
	clear(f.stagedAdds)
	for i, r := range f.staged {
		if r.Op == opAdd {
			f.stagedAdds[r.Key] = i
		}
	}
	f.stateDirty = f.stateDirty || c.stateDirty
}

// writeState replaces state.json.
func (f *Folder) writeState(s SyncState) error {
	data, err := encodeState(s)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(f.statePath(), data); err != nil {
		return f.a.ioErr(err, "commit folder %q: writing sync state", f.name)
	}
	return nil
}

func (f *Folder) writable() error {
	if f.a.readOnly {
		return ErrReadOnly
	}
	if f.closed {
		return fmt.Errorf("folder %q: archive closed", f.name)
	}
	return nil
}

// Entries lists the committed messages in index order.
func (f *Folder) Entries() []Meta {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Meta, 0, f.idx.count)
	for i := range f.idx.entries {
		if e := &f.idx.entries[i]; !e.gone {
			out = append(out, e.meta())
		}
	}
	return out
}

// HighestUID is the highest server UID among the committed messages (0
// when none has one).
func (f *Folder) HighestUID() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var top uint32
	for uid := range f.idx.byUID {
		top = max(top, uid)
	}
	return top
}

// ByUID finds the committed message with this IMAP UID (the latest one if
// the folder's UIDVALIDITY changed and a UID repeats).
func (f *Folder) ByUID(uid uint32) (Meta, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.idx.byUID[uid]
	if !ok || f.idx.entries[i].gone {
		return Meta{}, false
	}
	return f.idx.entries[i].meta(), true
}

// ByUIDL finds the committed message with this POP3 UIDL.
func (f *Folder) ByUIDL(uidl string) (Meta, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.idx.lookup(f.idx.byUIDL, uidl)
	if !ok {
		return Meta{}, false
	}
	return f.idx.entries[i].meta(), true
}

// BySHA256 lists the committed messages with this digest (lower-case hex).
func (f *Folder) BySHA256(sum string) []Meta {
	key, ok := decodeSum(sum)
	if !ok {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.metas(f.idx.bySHA256(key))
}

// ByMessageID lists the committed messages with this raw Message-ID.
func (f *Folder) ByMessageID(id string) []Meta {
	f.mu.Lock()
	defer f.mu.Unlock()
	head, ok := f.idx.byMID[strings.TrimSpace(id)]
	if !ok || id == "" {
		return nil
	}
	return f.metas(f.idx.chain(head, f.idx.nextMID))
}

func (f *Folder) metas(is []int32) []Meta {
	out := make([]Meta, len(is))
	for j, i := range is {
		out[j] = f.idx.entries[i].meta()
	}
	return out
}

// Open streams a committed message's exact bytes. The reader fails with
// ErrCorrupt at the end if they no longer match the index.
func (f *Folder) Open(key string) (io.ReadCloser, error) {
	f.mu.Lock()
	i, ok := f.idx.lookup(f.idx.byKey, key)
	var e entry
	if ok {
		e = f.idx.entries[i]
	}
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s in folder %q", ErrNoMessage, key, f.name)
	}
	return f.st.open(&e)
}

// close drops what was not committed and releases the folder's files.
func (f *Folder) close() error {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var err error
	if !f.a.readOnly && len(f.staged) > 0 {
		// Put committed messages' file names back to their indexed flags,
		// then remove the uncommitted messages.
		for _, k := range f.stagedFlags {
			if i, ok := f.idx.byKey[k]; ok {
				err = errors.Join(err, f.st.setFlags(k, f.idx.entryFlags(i)))
			}
		}
		err = errors.Join(err, f.st.rollback())
		f.staged = nil
	}
	return errors.Join(err, f.closeFiles())
}

func (f *Folder) closeFiles() error {
	return errors.Join(f.ixf.close(), f.st.close())
}
