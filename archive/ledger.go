package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/mailark/mailark/internal/mailerr"
)

// Ledger records what a restore uploaded to one target, so an interrupted
// restore resumes where it stopped and a rerun uploads nothing twice. It is
// an append-only file of JSON lines; each Record call is fsync'ed before it
// returns. A torn last line (a crash during Record) is dropped on open: the
// upload it described is found again on the target by the restore's
// duplicate check. The file is flock'ed while open.
type Ledger struct {
	mu   sync.Mutex
	path string
	f    *os.File
	lock *flock.Flock
	size int64
	seen map[ledgerKey]struct{}
}

// LedgerEntry is one uploaded message.
type LedgerEntry struct {
	Folder       string    `json:"folder"` // archive side
	Key          string    `json:"key"`
	SHA256       string    `json:"sha256"`
	TargetFolder string    `json:"target_folder"` // target side
	UIDValidity  uint32    `json:"uidvalidity,omitempty"`
	UID          uint32    `json:"uid,omitempty"` // 0 when the target has no UIDPLUS
	At           time.Time `json:"at"`
}

type ledgerKey struct{ folder, key, sum string }

// OpenLedger opens (creating 0600, with its directory 0700) the ledger at
// path. Foreign archives keep theirs outside the archive.
func OpenLedger(path string) (*Ledger, error) {
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "create ledger directory for %s", path)
	}
	lk := flock.New(path, flock.SetPermissions(fileMode))
	ok, err := lk.TryLock()
	if err != nil {
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "lock ledger %s", path)
	}
	if !ok {
		return nil, kinded(lockedByAnother, "ledger %s is in use by another restore to the same target; wait for it to finish", path)
	}
	f, err := openAppendable(path)
	if err != nil {
		lk.Unlock()
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "open ledger %s", path)
	}
	l := &Ledger{path: path, f: f, lock: lk, seen: map[ledgerKey]struct{}{}}
	if err := l.load(); err != nil {
		f.Close()
		lk.Unlock()
		return nil, err
	}
	return l, nil
}

// load reads every complete line and cuts a torn last one off.
func (l *Ledger) load() error {
	br := bufio.NewReaderSize(l.f, 64<<10)
	var good int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				if err := truncateSync(l.f, good); err != nil {
					return mailerr.E(mailerr.ErrLocalIO, err, "repair ledger %s", l.path)
				}
			}
			l.size = good
			return nil
		}
		if err != nil {
			return mailerr.E(mailerr.ErrLocalIO, err, "read ledger %s", l.path)
		}
		var e LedgerEntry
		err = json.Unmarshal(line, &e)
		if err == nil {
			err = e.decodeStrings()
		}
		if err != nil {
			return mailerr.E(mailerr.ErrDamaged, fmt.Errorf("%w: line %d: %v", ErrCorrupt, n, err),
				"restore ledger %s is damaged; move it aside (the next restore then checks the target for every message)", l.path)
		}
		l.seen[ledgerKey{e.Folder, e.Key, e.SHA256}] = struct{}{}
		good += int64(len(line))
	}
}

// Has reports whether the message was recorded as uploaded.
func (l *Ledger) Has(folder, key, sha256 string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.seen[ledgerKey{folder, key, sha256}]
	return ok
}

// Len is the number of recorded uploads.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// Record appends entries (one batch, e.g. a MULTIAPPEND) and fsyncs before
// returning. Entries without At get the current time.
func (l *Ledger) Record(entries ...LedgerEntry) error {
	if len(entries) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("ledger %s is closed", l.path)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	now := time.Now().UTC()
	for _, e := range entries {
		if e.At.IsZero() {
			e.At = now
		}
		if err := enc.Encode(e.encodeStrings()); err != nil {
			return err
		}
	}
	if _, err := l.f.WriteAt(buf.Bytes(), l.size); err != nil {
		_ = l.f.Truncate(l.size)
		return mailerr.E(mailerr.ErrLocalIO, err, "write ledger %s", l.path)
	}
	if err := l.f.Sync(); err != nil {
		_ = l.f.Truncate(l.size)
		return mailerr.E(mailerr.ErrLocalIO, err, "sync ledger %s", l.path)
	}
	l.size += int64(buf.Len())
	for _, e := range entries {
		l.seen[ledgerKey{e.Folder, e.Key, e.SHA256}] = struct{}{}
	}
	return nil
}

// Close releases the ledger.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return errors.Join(err, l.lock.Unlock())
}

func (e LedgerEntry) encodeStrings() LedgerEntry {
	e.Folder, e.Key, e.TargetFolder = encodeLossless(e.Folder), encodeLossless(e.Key), encodeLossless(e.TargetFolder)
	return e
}

func (e *LedgerEntry) decodeStrings() error {
	var ok1, ok2, ok3 bool
	e.Folder, ok1 = decodeLossless(e.Folder)
	e.Key, ok2 = decodeLossless(e.Key)
	e.TargetFolder, ok3 = decodeLossless(e.TargetFolder)
	if !ok1 || !ok2 || !ok3 {
		return errors.New("bad encoded string")
	}
	return nil
}
