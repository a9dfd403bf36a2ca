package archive

import (
	"bufio"
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
//	From MAILER-DAEMON <INTERNALDATE in UTC, asctime>\n
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
	f        *os.File // writable only
	end      int64    // where the next message goes
	synced   int64    // end at the last sync
	bw       *bufio.Writer
	buf      []byte
}

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
	if s.bw == nil {
		s.bw = bufio.NewWriterSize(nil, 256<<10)
		s.buf = make([]byte, 64<<10)
	}
	off := s.end
	s.bw.Reset(io.NewOffsetWriter(s.f, off))
	loc, err := s.writeMessage(src, msg)
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		// Leave no partial message: cut back to where it began. The file
		// offset is ours alone (positional writes), so the next append
		// starts there too.
		if terr := s.f.Truncate(off); terr != nil {
			return fmt.Errorf("%w (and cutting the partial message failed: %v)", err, terr)
		}
		return err
	}
	loc.off = off
	msg.loc = loc
	msg.key = fmt.Sprint(off)
	s.end = loc.end()
	return nil
}

func (s *mboxStore) writeMessage(src io.Reader, msg *pendingMsg) (mboxLoc, error) {
	var loc mboxLoc
	pre := fromLine(msg.date) + statusLines(msg.flags)
	if _, err := s.bw.WriteString(pre); err != nil {
		return loc, err
	}
	cw := &countingWriter{w: s.bw}
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
	if _, err := s.bw.WriteString(trailer); err != nil {
		return loc, err
	}
	loc.pre = int64(len(pre))
	loc.esc = cw.n
	loc.disk = loc.pre + loc.esc + int64(len(trailer))
	return loc, nil
}

// fromLine is the separator line: sender and the INTERNALDATE in UTC,
// asctime format, as every mbox reader expects.
func fromLine(date time.Time) string {
	return fromPrefix + fromSender + " " + date.UTC().Format(time.ANSIC) + "\n"
}

// statusLines renders flags the way mutt, Dovecot and Python's mailbox read
// them from an mbox: Status (R read, O old), X-Status (A answered,
// F flagged, T draft, D deleted) and X-Keywords. Keywords that are not
// plain atoms are kept in the index only.
func statusLines(flags []string) string {
	status := "O"
	var xstatus, keywords []string
	for _, f := range flags {
		switch f {
		case FlagSeen:
			status = "RO"
		case FlagAnswered:
			xstatus = append(xstatus, "A")
		case FlagFlagged:
			xstatus = append(xstatus, "F")
		case FlagDraft:
			xstatus = append(xstatus, "T")
		case FlagDeleted:
			xstatus = append(xstatus, "D")
		default:
			if !strings.HasPrefix(f, `\`) && isAtom(f) {
				keywords = append(keywords, f)
			}
		}
	}
	var b strings.Builder
	b.WriteString("Status: " + status + "\n")
	if len(xstatus) > 0 {
		b.WriteString("X-Status: " + strings.Join(xstatus, "") + "\n")
	}
	if len(keywords) > 0 {
		b.WriteString("X-Keywords: " + strings.Join(keywords, " ") + "\n")
	}
	return b.String()
}

// setFlags keeps new flags in the index only: rewriting status lines would
// move every later message in the file. The index is what restore uses.
func (s *mboxStore) setFlags(key string, flags []string) error {
	if s.f == nil {
		return ErrReadOnly
	}
	return nil
}

func (s *mboxStore) sync() error {
	if s.f == nil || s.end == s.synced {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.synced = s.end
	return nil
}

func (s *mboxStore) rollback() error {
	if s.f == nil || s.end == s.synced {
		return nil
	}
	if err := truncateSync(s.f, s.synced); err != nil {
		return err
	}
	s.end = s.synced
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
