package pop3server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// ErrInUse is returned by Store.Open while another session holds the
// maildrop (RFC 1939 exclusive access; the client sees [IN-USE]).
var ErrInUse = errors.New("maildrop in use")

// Store gives sessions their users' maildrops.
type Store interface {
	// Open locks the user's maildrop for one session.
	Open(user string) (Maildrop, error)
}

// Maildrop is a locked snapshot of one user's messages for one session.
type Maildrop interface {
	// Messages lists the messages present when the session began.
	Messages() []Info
	// Open returns message i (0-based) as stored.
	Open(i int) (io.ReadCloser, error)
	// Commit removes the given messages (0-based): the UPDATE state.
	Commit(deleted []int) error
	// Close releases the lock.
	Close()
}

// Info describes one message of a maildrop.
type Info struct {
	UIDL string
	Size int64 // size on the wire with CRLF line ends, which LIST reports
}

// MemStore is an in-memory Store. It is safe for concurrent use; tests
// change it between sessions to model a server's behaviour.
type MemStore struct {
	mu    sync.Mutex
	boxes map[string]*memBox
}

type memBox struct {
	msgs   []*memMsg
	locked bool
	next   int
}

type memMsg struct {
	uidl string
	data []byte
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{boxes: map[string]*memBox{}} }

func (m *MemStore) box(user string) *memBox {
	b := m.boxes[user]
	if b == nil {
		b = &memBox{}
		m.boxes[user] = b
	}
	return b
}

// Add appends a message with a fresh unique UIDL and returns the UIDL.
func (m *MemStore) Add(user string, raw []byte) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.box(user)
	b.next++
	uidl := fmt.Sprintf("%08x%s", b.next, shortHash(raw))
	b.msgs = append(b.msgs, &memMsg{uidl: uidl, data: raw})
	return uidl
}

// AddWithUIDL appends a message under a UIDL the caller chooses, even
// one another message has or had (a server that reuses UIDLs).
func (m *MemStore) AddWithUIDL(user, uidl string, raw []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.box(user)
	b.msgs = append(b.msgs, &memMsg{uidl: uidl, data: raw})
}

// Replace gives the message that has uidl new content (a server that
// returns a different message for the same UIDL). It reports whether
// the UIDL was found.
func (m *MemStore) Replace(user, uidl string, raw []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.box(user).msgs {
		if msg.uidl == uidl {
			msg.data = raw
			return true
		}
	}
	return false
}

// Remove deletes the message with uidl, as another client would.
func (m *MemStore) Remove(user, uidl string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.box(user)
	for i, msg := range b.msgs {
		if msg.uidl == uidl {
			b.msgs = append(b.msgs[:i], b.msgs[i+1:]...)
			return true
		}
	}
	return false
}

// Message is a message held by a MemStore.
type Message struct {
	UIDL string
	Data []byte
}

// Messages returns the user's current messages.
func (m *MemStore) Messages(user string) []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Message
	for _, msg := range m.box(user).msgs {
		out = append(out, Message{UIDL: msg.uidl, Data: msg.data})
	}
	return out
}

// Open implements Store.
func (m *MemStore) Open(user string) (Maildrop, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.box(user)
	if b.locked {
		return nil, ErrInUse
	}
	b.locked = true
	return &memDrop{store: m, box: b, msgs: append([]*memMsg(nil), b.msgs...)}, nil
}

type memDrop struct {
	store *MemStore
	box   *memBox
	msgs  []*memMsg // the session's snapshot
}

func (d *memDrop) Messages() []Info {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	out := make([]Info, len(d.msgs))
	for i, m := range d.msgs {
		out[i] = Info{UIDL: m.uidl, Size: WireSize(bytes.NewReader(m.data))}
	}
	return out
}

func (d *memDrop) Open(i int) (io.ReadCloser, error) {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	return io.NopCloser(bytes.NewReader(d.msgs[i].data)), nil
}

func (d *memDrop) Commit(deleted []int) error {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	gone := map[*memMsg]bool{}
	for _, i := range deleted {
		gone[d.msgs[i]] = true
	}
	kept := d.box.msgs[:0]
	for _, m := range d.box.msgs {
		if !gone[m] {
			kept = append(kept, m)
		}
	}
	d.box.msgs = kept
	return nil
}

func (d *memDrop) Close() {
	d.store.mu.Lock()
	d.box.locked = false
	d.store.mu.Unlock()
}

// MaildirStore serves each user the maildir DIR/USER (new/ and cur/),
// ordered by file name; a message's UIDL is its maildir unique name.
// Deleting removes the file.
type MaildirStore struct {
	Dir string

	mu     sync.Mutex
	locked map[string]bool
}

// Open implements Store.
func (s *MaildirStore) Open(user string) (Maildrop, error) {
	if user == "" || strings.ContainsAny(user, `/\`) || strings.HasPrefix(user, ".") {
		return nil, fmt.Errorf("bad user name %q", user)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked == nil {
		s.locked = map[string]bool{}
	}
	if s.locked[user] {
		return nil, ErrInUse
	}
	d := &maildirDrop{store: s, user: user}
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(s.Dir, user, sub)
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			uidl, _, _ := strings.Cut(e.Name(), ":")
			path := filepath.Join(dir, e.Name())
			size, err := fileWireSize(path)
			if err != nil {
				return nil, err
			}
			d.files = append(d.files, maildirFile{path: path, info: Info{UIDL: uidl, Size: size}})
		}
	}
	sort.Slice(d.files, func(i, j int) bool { return d.files[i].info.UIDL < d.files[j].info.UIDL })
	s.locked[user] = true
	return d, nil
}

type maildirFile struct {
	path string
	info Info
}

type maildirDrop struct {
	store *MaildirStore
	user  string
	files []maildirFile
}

func (d *maildirDrop) Messages() []Info {
	out := make([]Info, len(d.files))
	for i, f := range d.files {
		out[i] = f.info
	}
	return out
}

func (d *maildirDrop) Open(i int) (io.ReadCloser, error) { return os.Open(d.files[i].path) }

func (d *maildirDrop) Commit(deleted []int) error {
	var errs []error
	for _, i := range deleted {
		if err := os.Remove(d.files[i].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *maildirDrop) Close() {
	d.store.mu.Lock()
	delete(d.store.locked, d.user)
	d.store.mu.Unlock()
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

func fileWireSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return WireSize(f), nil
}
