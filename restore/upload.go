package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn"
)

// errSourceChanged is returned when an archive message no longer has the
// size or checksum its listing gave (a mail client rewrote the file while
// the restore ran). The literal is left incomplete, so the server stores
// nothing.
var errSourceChanged = errors.New("the archive message changed while it was being uploaded")

// uploadItem is one message on its way to the target.
type uploadItem struct {
	c     *candidate
	flags []imap.Flag
	date  time.Time
}

// outcome is what became of one uploaded message.
type outcome struct {
	ok          bool
	uid         uint32 // from APPENDUID, 0 without UIDPLUS
	uidValidity uint32
	// err is set when the message was not stored. messageErr says the
	// failure concerns this message (the server refused it, the archive
	// copy is unreadable): retrying it would fail again.
	err        error
	messageErr bool
}

// systemFlags are the flags APPEND may carry with a backslash. \Recent is
// not among them: the server sets it, and Dovecot answers a client-sent
// \Recent with BAD — after which it reads a non-synchronising literal
// already sent as commands.
var systemFlags = map[string]imap.Flag{
	`\seen`: imap.FlagSeen, `\answered`: imap.FlagAnswered, `\flagged`: imap.FlagFlagged,
	`\deleted`: imap.FlagDeleted, `\draft`: imap.FlagDraft,
}

// maxKeywordLen is the longest keyword sent. Dovecot refuses longer ones
// (mail_max_keyword_length, 50 by default); a refused flag must never
// reach a server that would then misread the message body.
const maxKeywordLen = 50

// sanitizeFlags keeps the system flags and the keywords the target folder
// stores (any valid atom when PERMANENTFLAGS has \*, else only those it
// names), drops everything else, and removes duplicates.
func sanitizeFlags(flags []string, st *targetState) []imap.Flag {
	var out []imap.Flag
	seen := map[string]bool{}
	for _, f := range flags {
		k := strings.ToLower(f)
		if seen[k] {
			continue
		}
		if strings.HasPrefix(f, `\`) {
			if sf, ok := systemFlags[k]; ok {
				out, seen[k] = append(out, sf), true
			}
			continue
		}
		if isAtom(f) && len(f) <= maxKeywordLen && (st.keywords || st.allowed[k]) {
			out, seen[k] = append(out, imap.Flag(f)), true
		}
	}
	return out
}

// isAtom reports whether s is an IMAP atom (RFC 3501 atom-char*): what a
// keyword must be.
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// appendDate is the INTERNALDATE sent with a message, or zero (the
// server's clock) when the archive has none or one no server takes.
func appendDate(t time.Time) time.Time {
	if t.IsZero() || t.Year() < 1971 || t.Year() > 2999 {
		return time.Time{}
	}
	return t.Truncate(time.Second)
}

// sourceError is a failure to read an archive message (not the
// connection's fault): retrying the message would fail again.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// copyExact writes exactly m.Size bytes of the archive message to w and
// checks that they are the bytes the archive listed (size and SHA-256).
// The last byte is held back until the checksum is known, so a message
// that changed is never completed on the wire. Failures of the archive
// side are *sourceError.
func copyExact(w io.Writer, src archive.Reader, folder string, m archive.Meta) error {
	if m.Size <= 0 {
		return &sourceError{fmt.Errorf("%s/%s is empty", folder, m.Key)}
	}
	rc, err := src.Open(folder, m.Key)
	if err != nil {
		return &sourceError{err}
	}
	defer rc.Close()
	h := sha256.New()
	buf := make([]byte, 64<<10)
	remaining := m.Size
	var last byte
	for remaining > 0 {
		n, err := io.ReadFull(rc, buf[:min(int64(len(buf)), remaining)])
		if err != nil {
			return &sourceError{fmt.Errorf("%w: %s/%s is shorter than %d bytes", errSourceChanged, folder, m.Key, m.Size)}
		}
		h.Write(buf[:n])
		remaining -= int64(n)
		if remaining == 0 {
			n--
			last = buf[n]
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
	if n, _ := rc.Read(buf[:1]); n > 0 {
		return &sourceError{fmt.Errorf("%w: %s/%s is longer than %d bytes", errSourceChanged, folder, m.Key, m.Size)}
	}
	if m.SHA256 != "" && hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return &sourceError{fmt.Errorf("%w: %s/%s has other content than when it was listed", errSourceChanged, folder, m.Key)}
	}
	_, err = w.Write([]byte{last})
	return err
}

// appendPipelined uploads a batch with one APPEND per message, sent one
// after the other without waiting for the answers (go-imap sends small
// messages as non-synchronising literals; larger ones wait for the
// server's go-ahead, one round trip each). It stops sending at the first
// failure that leaves the connection unusable.
func appendPipelined(c *imapconn.Conn, src archive.Reader, mailbox string, items []*uploadItem) []outcome {
	type sent struct {
		cmd               *imapclient.AppendCommand
		copyErr, closeErr error
	}
	out := make([]outcome, len(items))
	cmds := make([]sent, 0, len(items))
	for _, it := range items {
		cmd := c.Client.Append(mailbox, it.c.meta.Size, &imap.AppendOptions{Flags: it.flags, Time: it.date})
		copyErr := copyExact(cmd, src, it.c.folder, it.c.meta)
		closeErr := cmd.Close() // an incomplete literal closes the connection: nothing is stored
		cmds = append(cmds, sent{cmd, copyErr, closeErr})
		if copyErr != nil || closeErr != nil {
			break
		}
	}
	for i, s := range cmds {
		data, err := s.cmd.Wait()
		var se *sourceError
		var ie *imap.Error
		switch {
		case errors.As(s.copyErr, &se):
			out[i] = outcome{err: se, messageErr: true}
		case errors.As(err, &ie), errors.As(s.copyErr, &ie):
			// The server answered NO for this command: it is about the
			// message (too big, a flag refused), even when go-imap then
			// closes the connection, as it does after refusing a
			// synchronising literal (the refusal reaches the literal
			// writer first).
			out[i] = outcome{err: c.Err(ie, "uploading to "+mailbox), messageErr: true}
		case s.copyErr != nil:
			out[i] = outcome{err: c.Err(s.copyErr, "uploading to "+mailbox)}
		case err != nil:
			out[i] = outcome{err: c.Err(err, "uploading to "+mailbox)}
		case s.closeErr != nil:
			out[i] = outcome{err: c.Err(s.closeErr, "uploading to "+mailbox)}
		default:
			out[i] = outcome{ok: true, uid: uint32(data.UID), uidValidity: data.UIDValidity}
		}
	}
	for i := len(cmds); i < len(items); i++ {
		out[i] = outcome{err: errNotSent}
	}
	return out
}

var errNotSent = errors.New("not sent: the connection failed before")
