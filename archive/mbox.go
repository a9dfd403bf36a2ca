package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// mboxStore keeps a folder as one mboxrd file. Each message is
//
//	From MAILER-DAEMON <INTERNALDATE in UTC, asctime> +0000\n
//	Status: RO\n  X-Status: AFTD\n  X-Keywords: k1 k2\n   (flags as mutt and Dovecot read them)
//	<the message, mboxrd-quoted, line endings untouched>
//	\n            (only when the message does not end with a newline)
//	\n            (the blank line before the next From line)
//
// The index records where each part starts, so reading strips the From and
// status lines and unquotes exactly the message's bytes.
type mboxStore struct {
	env      storeEnv
	path     string
	readOnly bool
	f        *os.File    // writable only
	end      int64       // where the next message goes
	synced   int64       // end at the last sync
	tail     *tailBuffer // appends not yet written to the file
	buf      []byte
	base     *imapBase // the first message's X-IMAPbase header, nil if none

	pendingFlags map[string][]string // flag changes to write after the next Commit
}

// imapBase is the X-IMAPbase header mailark writes into the first message
// of each mbox. Dovecot honours X-Keywords only for keywords listed there,
// so the list grows as messages with new keywords arrive: the header is
// written with room to spare and rewritten in place, never changing the
// length of anything (message offsets in the index stay right). It lies in
// the part of the first message that reading strips, so its content does
// not affect what Open returns.
type imapBase struct {
	valueOff int64 // file offset of the header's value
	keywords []string
	known    map[string]bool
	full     bool // no room left; later keywords stay in the index only
}

// imapBaseValueSize is the fixed length of the X-IMAPbase value: UID
// validity, last UID and the keyword list, padded with spaces (Dovecot
// ignores trailing white space there and pads the same way itself).
const imapBaseValueSize = 1000

const imapBaseName = "X-IMAPbase: "

// fromSender is the envelope sender of every From line mailark writes. It
// also marks a tail as mailark's own when repair finds one.
const fromSender = "MAILER-DAEMON"

func newMboxStore(env storeEnv, path string, readOnly bool) *mboxStore {
	return &mboxStore{env: env, path: path, readOnly: readOnly}
}

func (s *mboxStore) prepare() error {
	if err := mkdirAll(filepath.Dir(s.path)); err != nil {
		return err
	}
	_, statErr := os.Stat(s.path)
	f, err := openAppendable(s.path)
	if err != nil {
		return err
	}
	s.f = f
	if errors.Is(statErr, fs.ErrNotExist) {
		return syncDir(filepath.Dir(s.path)) // the new file's directory entry
	}
	return nil
}

func (s *mboxStore) reconcile(idx *index, repair bool) error {
	var committed int64
	var last *entry
	for i := range idx.entries {
		e := &idx.entries[i]
		if e.loc.end() > committed {
			committed, last = e.loc.end(), e
		}
	}
	st, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) && committed == 0 {
		return nil // read-only view of a folder created but never written
	}
	if err != nil {
		return err
	}
	if st.Size() < committed {
		return fmt.Errorf("%w: mbox %s is %d bytes but its index needs %d; it was truncated or rewritten outside mailark",
			ErrCorrupt, s.path, st.Size(), committed)
	}
	if last != nil {
		if err := s.expectFromLine(last.loc.off); err != nil {
			return err
		}
	}
	s.end, s.synced = committed, committed
	s.base = nil
	if i, ok := idx.byKey["0"]; ok {
		s.base = s.readIMAPBase(idx.entries[i].loc.pre)
	}
	if st.Size() == committed || !repair {
		return nil
	}
	return s.cutTail(committed, st.Size())
}

// expectFromLine checks that the index still points at a From line.
func (s *mboxStore) expectFromLine(off int64) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	got := make([]byte, len(fromPrefix))
	if _, err := f.ReadAt(got, off); err != nil || string(got) != fromPrefix {
		return fmt.Errorf("%w: mbox %s has no message at offset %d where its index expects one; it was rewritten outside mailark (by a mail client?)",
			ErrCorrupt, s.path, off)
	}
	return nil
}

func (s *mboxStore) readIMAPBase(pre int64) *imapBase {
	f, err := os.Open(s.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, pre)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil
	}
	return parseIMAPBase(buf)
}

// cutTail removes bytes after the last committed message. A tail that
// starts with mailark's own From line is an append a crash interrupted
// before Commit; the source will send those messages again. Anything else
// was written by another program and is kept in lost+found before the cut.
func (s *mboxStore) cutTail(committed, size int64) error {
	ours := fromPrefix + fromSender + " "
	probe := make([]byte, len(ours))
	n, _ := s.f.ReadAt(probe, committed)
	if string(probe[:n]) != ours {
		saved, err := s.saveTail(committed)
		if err != nil {
			return fmt.Errorf("mbox %s has %d bytes after its last indexed message that mailark did not write, and saving them failed: %w",
				s.path, size-committed, err)
		}
		s.env.log.Warn("mbox has data mailark did not write after its last indexed message; moved it aside",
			"folder", s.env.folder, "bytes", size-committed, "saved", saved)
	} else {
		s.env.log.Debug("removing uncommitted tail", "folder", s.env.folder, "bytes", size-committed)
	}
	return truncateSync(s.f, committed)
}

func (s *mboxStore) saveTail(from int64) (string, error) {
	if err := mkdirAll(s.env.lostDir); err != nil {
		return "", err
	}
	name := filepath.Join(s.env.lostDir, fmt.Sprintf("%s-%d.mbox", filepath.Base(s.path), time.Now().UnixNano()))
	out, err := createExclusive(name)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, io.NewSectionReader(s.f, from, 1<<62))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.env.lostDir)
	}
	return name, err
}

func (s *mboxStore) append(src io.Reader, msg *pendingMsg) error {
	if s.f == nil {
		return ErrReadOnly
	}
	if s.tail == nil {
		s.tail = newTailBuffer(s.f, s.end, 256<<10)
		s.buf = make([]byte, 64<<10)
	}
	off := s.end
	loc, err := s.writeMessage(src, msg)
	if err != nil {
		// Leave no partial message: cut back to where it began, in the
		// buffer and, if part of it was written, in the file.
		if off == 0 {
			s.base = nil
		}
		if terr := s.tail.cut(off); terr != nil {
			return fmt.Errorf("%w (and cutting the partial message failed: %v)", err, terr)
		}
		return err
	}
	loc.off = off
	msg.loc = loc
	msg.key = fmt.Sprint(off)
	s.end = loc.end()
	if off > 0 {
		s.registerKeywords(msg.flags)
	}
	return nil
}

// registerKeywords adds new keywords to the first message's X-IMAPbase.
// Failing to is not an error: the index has the flags; only Dovecot's view
// of the mbox would lack them.
func (s *mboxStore) registerKeywords(flags []string) {
	b := s.base
	if b == nil || b.full {
		return
	}
	added := false
	for _, kw := range mboxKeywords(flags) {
		if !b.known[strings.ToLower(kw)] {
			b.known[strings.ToLower(kw)] = true
			b.keywords = append(b.keywords, kw)
			added = true
		}
	}
	if !added {
		return
	}
	value, ok := b.value()
	if !ok {
		b.full = true
		s.env.log.Debug("X-IMAPbase is full; further keywords are kept in the index only", "folder", s.env.folder)
		return
	}
	if s.tail != nil && s.tail.holds(b.valueOff+imapBaseValueSize) {
		if err := s.tail.Flush(); err != nil {
			s.env.log.Warn("cannot update the keyword list in X-IMAPbase", "folder", s.env.folder, "err", err)
			return
		}
	}
	if _, err := s.f.WriteAt([]byte(value), b.valueOff); err != nil {
		s.env.log.Warn("cannot update the keyword list in X-IMAPbase", "folder", s.env.folder, "err", err)
	}
}

func newIMAPBase(flags []string) *imapBase {
	b := &imapBase{known: map[string]bool{}}
	for _, kw := range mboxKeywords(flags) {
		b.known[strings.ToLower(kw)] = true
		b.keywords = append(b.keywords, kw)
	}
	return b
}

// value renders the padded header value; false if the keywords do not fit.
func (b *imapBase) value() (string, bool) {
	v := fmt.Sprintf("%010d %010d", imapBaseUIDValidity, 0)
	if len(b.keywords) > 0 {
		v += " " + strings.Join(b.keywords, " ")
	}
	if len(v) > imapBaseValueSize {
		return "", false
	}
	return v + strings.Repeat(" ", imapBaseValueSize-len(v)), true
}

// imapBaseUIDValidity is the UIDVALIDITY a Dovecot reading the mbox
// starts from; mailark does not use it.
const imapBaseUIDValidity = 1

// parseIMAPBase finds the X-IMAPbase header mailark wrote in pre, the
// From and status lines of the message at offset 0.
func parseIMAPBase(pre []byte) *imapBase {
	i := bytes.Index(pre, []byte("\n"+imapBaseName))
	if i < 0 {
		return nil
	}
	start := i + 1 + len(imapBaseName)
	if start+imapBaseValueSize > len(pre) || pre[start+imapBaseValueSize] != '\n' {
		return nil
	}
	fields := strings.Fields(string(pre[start : start+imapBaseValueSize]))
	if len(fields) < 2 {
		return nil
	}
	b := &imapBase{valueOff: int64(start), known: map[string]bool{}}
	for _, kw := range fields[2:] {
		b.known[strings.ToLower(kw)] = true
		b.keywords = append(b.keywords, kw)
	}
	if _, ok := b.value(); !ok {
		b.full = true
	}
	return b
}

// mboxKeywords are the flags written into X-Keywords: keywords that are
// plain atoms.
func mboxKeywords(flags []string) []string {
	var out []string
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) && isAtom(f) {
			out = append(out, f)
		}
	}
	return out
}

func (s *mboxStore) writeMessage(src io.Reader, msg *pendingMsg) (mboxLoc, error) {
	var loc mboxLoc
	pre := fromLine(msg.date)
	if s.end == 0 {
		base := newIMAPBase(msg.flags)
		value, ok := base.value()
		if !ok { // more keywords than fit: list none, as for a full header
			base = newIMAPBase(nil)
			base.full = true
			value, _ = base.value()
		}
		base.valueOff = int64(len(pre) + len(imapBaseName))
		pre += imapBaseName + value + "\n"
		s.base = base
	}
	pre += statusLines(msg.flags)
	if _, err := s.tail.WriteString(pre); err != nil {
		return loc, err
	}
	cw := &countingWriter{w: s.tail}
	codec := newRDCodec(false)
	var last byte
	var total int64
	for {
		n, rerr := src.Read(s.buf)
		if n > 0 {
			last = s.buf[n-1]
			total += int64(n)
			if err := codec.write(cw, s.buf[:n]); err != nil {
				return loc, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return loc, rerr
		}
	}
	if err := codec.flush(cw); err != nil {
		return loc, err
	}
	trailer := "\n"
	if total == 0 || last != '\n' {
		trailer = "\n\n"
	}
	if _, err := s.tail.WriteString(trailer); err != nil {
		return loc, err
	}
	loc.pre = int64(len(pre))
	loc.esc = cw.n
	loc.disk = loc.pre + loc.esc + int64(len(trailer))
	return loc, nil
}

// fromLine is the separator line: sender and the INTERNALDATE in UTC,
// asctime format, as every mbox reader expects, followed by the numeric
// zone "+0000". Without it Dovecot and mutt read the date as local time;
// with it they read it right whatever the reader's TZ.
func fromLine(date time.Time) string {
	return fromPrefix + fromSender + " " + date.UTC().Format(time.ANSIC) + " +0000\n"
}

// statusLines renders flags the way mutt, Dovecot and Python's mailbox read
// them from an mbox: Status (R read, O old), X-Status (A answered,
// F flagged, T draft, D deleted) and X-Keywords. Keywords that are not
// plain atoms are kept in the index only. All three lines are always
// written, and X-Keywords is padded with statusSlack spaces (as Dovecot
// pads it), so a later flag change can be written in place.
func statusLines(flags []string) string {
	block, _ := statusBlock(flags, 0)
	return block
}

// statusSlack is the room left in X-Keywords for later flag changes.
const statusSlack = 40

// statusBlock renders the status lines padded to exactly size bytes, or
// with statusSlack spaces of padding when size is 0. It reports false when
// the flags need more than size.
func statusBlock(flags []string, size int) (string, bool) {
	status := "O"
	var xstatus string
	for _, f := range flags {
		switch f {
		case FlagSeen:
			status = "RO"
		case FlagAnswered:
			xstatus += "A"
		case FlagFlagged:
			xstatus += "F"
		case FlagDraft:
			xstatus += "T"
		case FlagDeleted:
			xstatus += "D"
		}
	}
	head := "Status: " + status + "\nX-Status: " + xstatus + "\nX-Keywords: " + strings.Join(mboxKeywords(flags), " ")
	pad := statusSlack
	if size > 0 {
		pad = size - len(head) - 1
	}
	if pad < 0 {
		return "", false
	}
	return head + strings.Repeat(" ", pad) + "\n", true
}

// setFlags remembers a flag change; afterCommit writes it into the
// message's status lines once the index holds it, so the index stays the
// authority and the file never shows flags the index does not.
func (s *mboxStore) setFlags(key string, flags []string) error {
	if s.f == nil {
		return ErrReadOnly
	}
	if s.pendingFlags == nil {
		s.pendingFlags = map[string][]string{}
	}
	s.pendingFlags[key] = flags
	return nil
}

// afterCommit rewrites the status lines of messages whose flags changed,
// in place and at the same length. A change that does not fit the room
// left (many new keywords) stays in the index only; readers other than
// mailark then see the older flags.
func (s *mboxStore) afterCommit(idx *index) error {
	for key, flags := range s.pendingFlags {
		i, ok := idx.byKey[key]
		if !ok {
			continue
		}
		s.registerKeywords(flags)
		if err := s.rewriteStatus(idx.entries[i].loc, flags); err != nil {
			return err
		}
	}
	clear(s.pendingFlags)
	return nil
}

func (s *mboxStore) rewriteStatus(loc mboxLoc, flags []string) error {
	pre := make([]byte, loc.pre)
	if _, err := s.f.ReadAt(pre, loc.off); err != nil {
		return err
	}
	i := bytes.LastIndex(pre, []byte("\nStatus: "))
	if i < 0 {
		return nil // written before status blocks were fixed-size
	}
	old := pre[i+1:]
	block, ok := statusBlock(flags, len(old))
	if !ok {
		s.env.log.Debug("no room for new flags in the mbox status lines; kept in the index", "folder", s.env.folder, "offset", loc.off)
		return nil
	}
	if block == string(old) {
		return nil
	}
	_, err := s.f.WriteAt([]byte(block), loc.off+int64(i+1))
	return err
}

func (s *mboxStore) startSync() (func() error, func(bool), error) {
	if s.f == nil || s.end == s.synced {
		return nil, nil, nil
	}
	if s.tail != nil {
		if err := s.tail.Flush(); err != nil {
			return nil, nil, err
		}
	}
	// fsync covers what the file holds when it runs: at least up to
	// `to`, perhaps more (later appends), which does no harm.
	to := s.end
	return s.f.Sync, func(ok bool) {
		if ok {
			s.synced = max(s.synced, to)
		}
	}, nil
}

func (s *mboxStore) rollback() error {
	clear(s.pendingFlags)
	if s.f == nil || s.end == s.synced {
		return nil
	}
	if s.tail != nil {
		s.tail.reset(s.synced)
	}
	if err := truncateSync(s.f, s.synced); err != nil {
		return err
	}
	s.end = s.synced
	if s.end == 0 {
		s.base = nil
	}
	return nil
}

func (s *mboxStore) open(e *entry) (io.ReadCloser, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	body := io.NewSectionReader(f, e.loc.off+e.loc.pre, e.loc.esc)
	if err := checkPrefix(f, e.loc.off); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: message %s of folder %q: %v", ErrCorrupt, e.key, s.env.folder, err)
	}
	return newVerifyingReader(newRDReader(body), f, e, s.env.folder), nil
}

func checkPrefix(f *os.File, off int64) error {
	got := make([]byte, len(fromPrefix))
	if _, err := f.ReadAt(got, off); err != nil {
		return err
	}
	if !bytes.Equal(got, []byte(fromPrefix)) {
		return fmt.Errorf("no From line at offset %d", off)
	}
	return nil
}

func (s *mboxStore) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
