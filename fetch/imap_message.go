package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
)

// fetchedMsg gathers one FETCH response's items. Servers send them in any
// order; normally UID, FLAGS and INTERNALDATE come before the body (they
// are asked for first), and the body then streams from the socket
// straight into the archive. When the body comes first, it is spooled to
// a temporary file and appended once the rest is known, so memory stays
// flat either way.
type fetchedMsg struct {
	uid       imap.UID
	flags     []imap.Flag
	haveFlags bool
	date      time.Time
	haveDate  bool
	size      int64

	bodies   int
	nilBody  bool
	appended bool         // streamed into the archive already
	spool    *spooledBody // body kept aside until the items are complete
}

// message handles one message of a FETCH response. It returns only errors
// that end the folder (the connection broke, the archive failed); a
// message that cannot be archived is left unclaimed, for fetchMissing.
func (fs *folderSync) message(msg *imapclient.FetchMessageData) error {
	var m fetchedMsg
	defer m.discardSpool()
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			m.uid = it.UID
		case imapclient.FetchItemDataFlags:
			m.flags, m.haveFlags = it.Flags, true
		case imapclient.FetchItemDataInternalDate:
			m.date, m.haveDate = it.Time, true
		case imapclient.FetchItemDataRFC822Size:
			m.size = it.Size
		case imapclient.FetchItemDataBodySection:
			if err := fs.body(&m, it.Literal); err != nil {
				return err
			}
		}
	}
	if m.appended {
		return nil
	}
	if m.uid == 0 || m.spool == nil || !fs.wanted(m.uid) {
		if m.nilBody && m.uid != 0 {
			fs.r.log.Info("server sent no body", "folder", fs.job.name, "uid", m.uid)
		}
		return nil // unexpected, duplicate or bodiless: fetchMissing deals with it
	}
	return fs.finishSpooled(&m)
}

// body takes the message's literal: into the archive at once when the
// message is complete enough and plainly new, else into a spool file.
func (fs *folderSync) body(m *fetchedMsg, lit imap.LiteralReader) error {
	if lit == nil {
		m.nilBody = true
		return nil
	}
	m.bodies++
	if m.bodies > 1 {
		return nil // only one body section was asked for; drain the rest
	}
	if m.uid != 0 && m.haveFlags && m.haveDate && !fs.rescan && fs.claim(m.uid) {
		if testHookClaimed != nil {
			testHookClaimed(m.uid)
		}
		err := fs.appendStream(m, lit)
		fs.finish(m.uid, err == nil)
		if err != nil {
			return err
		}
		m.appended = true
		return nil
	}
	sp, err := newSpool(lit)
	if err != nil {
		return fs.readErr(err)
	}
	m.spool = sp
	return nil
}

// testHookClaimed, set by tests only, runs between a message's claim and
// its Append: the window in which no checkpoint may count it as archived.
var testHookClaimed func(uid imap.UID)

// appendStream streams the literal into the archive.
func (fs *folderSync) appendStream(m *fetchedMsg, lit imap.LiteralReader) error {
	tr := &trackedReader{r: lit, want: lit.Size()}
	meta, err := fs.folder.Append(tr, archive.AppendInfo{Flags: flagStrings(m.flags), Date: m.date, UID: uint32(m.uid)})
	if err != nil {
		if tr.err != nil {
			return fs.readErr(tr.err) // the network failed, not the disk
		}
		return err
	}
	fs.counted(meta.Size)
	return nil
}

// finishSpooled appends (or, when rescanning, matches) a spooled body.
func (fs *folderSync) finishSpooled(m *fetchedMsg) error {
	if fs.rescan {
		if matched, err := fs.matchArchived(m); err != nil || matched {
			return err
		}
	}
	if !fs.claim(m.uid) {
		return nil
	}
	if _, err := m.spool.f.Seek(0, io.SeekStart); err != nil {
		fs.finish(m.uid, false)
		return mailerr.E(mailerr.ErrLocalIO, err, "reading spooled message")
	}
	meta, err := fs.folder.Append(m.spool.f, archive.AppendInfo{Flags: flagStrings(m.flags), Date: m.date, UID: uint32(m.uid)})
	if err != nil {
		fs.finish(m.uid, false)
		return err
	}
	if fs.rescan {
		fs.mu.Lock()
		fs.claimed[meta.Key] = true // a later identical message is another copy
		fs.mu.Unlock()
	}
	fs.finish(m.uid, true)
	fs.counted(meta.Size)
	return nil
}

// matchArchived looks for an archived copy of a spooled message (same
// SHA-256) not yet matched to another server message, so that a rescan
// after a UIDVALIDITY change adds nothing twice, while two identical
// messages on the server still need two in the archive. A match is bound
// to the message's new UID (so flag sync finds it from now on) and gets
// the server's current flags.
func (fs *folderSync) matchArchived(m *fetchedMsg) (bool, error) {
	for _, e := range fs.folder.BySHA256(m.spool.sum) {
		fs.mu.Lock()
		taken := fs.claimed[e.Key]
		if !taken {
			fs.claimed[e.Key] = true
		}
		fs.mu.Unlock()
		if taken {
			continue
		}
		if !fs.claim(m.uid) {
			// The server sent this UID twice: the copy stays free for
			// another server message with the same bytes.
			fs.mu.Lock()
			delete(fs.claimed, e.Key)
			fs.mu.Unlock()
			return true, nil
		}
		if err := fs.rebind(e, m); err != nil {
			fs.finish(m.uid, false)
			return true, err
		}
		fs.finish(m.uid, true)
		fs.r.prog.Message(m.spool.size)
		return true, nil
	}
	return false, nil
}

// rebind gives a matched archived copy the server's current UID and flags.
func (fs *folderSync) rebind(e archive.Meta, m *fetchedMsg) error {
	if err := fs.folder.SetUID(e.Key, uint32(m.uid)); err != nil {
		return err
	}
	if !m.haveFlags {
		return nil
	}
	if want := flagStrings(m.flags); !sameFlags(e.Flags, want) {
		if err := fs.folder.SetFlags(e.Key, want); err != nil {
			return err
		}
		fs.r.addFlagUpdates(1)
	}
	return nil
}

func (fs *folderSync) counted(size int64) {
	fs.r.prog.Message(size)
	fs.r.addFetched(1, size)
}

// readErr classifies a failure to read a literal from the server. The
// connection is cut first (see imapconn.Conn.Abort): a half-read literal
// cannot be resumed anyway.
func (fs *folderSync) readErr(err error) error {
	var le *localError
	if errors.As(err, &le) {
		return mailerr.E(mailerr.ErrLocalIO, le.err, "spooling a message to a temporary file")
	}
	kerr := fs.conn.Err(err, "fetching messages of folder "+shortName(fs.job.box.Name))
	fs.conn.Abort()
	return kerr
}

// trackedReader remembers a read error, to tell a broken connection from
// a failing disk when Append fails. It also holds a literal to its
// announced size: go-imap's literal reader is a LimitReader that ends with
// a plain io.EOF when the connection closes inside the literal, which
// would pass a truncated message off as a complete one.
type trackedReader struct {
	r    io.Reader
	want int64 // the literal's announced size
	got  int64
	err  error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.got += int64(n)
	if err == io.EOF && t.got < t.want {
		err = fmt.Errorf("connection closed %d bytes into a %d-byte message: %w", t.got, t.want, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// spooledBody is a message body kept in a temporary file (0600, removed
// when done) with its SHA-256.
type spooledBody struct {
	f    *os.File
	sum  string
	size int64
}

type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }

func newSpool(lit imap.LiteralReader) (*spooledBody, error) {
	f, err := os.CreateTemp("", "mailark-spool-*")
	if err != nil {
		return nil, &localError{err}
	}
	os.Remove(f.Name()) // unlinked at once: nothing is left behind, even after a crash
	h := sha256.New()
	tr := &trackedReader{r: lit, want: lit.Size()}
	n, err := io.Copy(io.MultiWriter(f, h), tr)
	if err != nil {
		f.Close()
		if tr.err != nil {
			return nil, tr.err
		}
		return nil, &localError{fmt.Errorf("writing spool file: %w", err)}
	}
	return &spooledBody{f: f, sum: hex.EncodeToString(h.Sum(nil)), size: n}, nil
}

func (m *fetchedMsg) discardSpool() {
	if m.spool != nil {
		m.spool.f.Close()
		m.spool = nil
	}
}
