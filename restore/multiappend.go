package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/utf7"
	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn"
)

// MULTIAPPEND (RFC 3502) stores a whole batch with one command, and
// Dovecot commits it as one transaction: about three times as fast as one
// APPEND per message, and all or nothing, which is exactly the unit the
// ledger records. go-imap has no command for it, so it is written here and
// sent with imapconn's RawCommand, with non-synchronising literals
// (LITERAL+) so that no message waits for a round trip.
//
// The command line is built only from values that cannot make a server
// refuse it at parse time (sanitised flags, a well-formed date, the
// mailbox name as a quoted string): a server that answers BAD after
// non-synchronising literals were sent would read the rest of the
// literals as commands.

// multiAppendSupported reports whether batches can go as MULTIAPPEND
// with non-synchronising literals of any size.
func multiAppendSupported(c *imapconn.Conn) bool {
	return c.Caps.Has(imap.CapMultiAppend) && hasExactCap(c.Caps, imap.CapLiteralPlus)
}

// hasExactCap ignores go-imap's implications (LITERAL+ implies LITERAL-,
// but LITERAL- alone allows only small non-synchronising literals).
func hasExactCap(caps imap.CapSet, c imap.Cap) bool {
	for have := range caps {
		if strings.EqualFold(string(have), string(c)) {
			return true
		}
	}
	return false
}

// appendMulti uploads a batch as one MULTIAPPEND. It returns nil when the
// batch must go as single APPENDs instead: the mailbox name cannot be
// sent raw, or the server refused the command (NO: some message is
// unacceptable; all or nothing means none was stored), so that only the
// offending messages fail.
//
// fence is called after the last literal, before the CRLF that completes
// the command, with sent false (if it fails, the command is abandoned),
// and with sent true once the CRLF is written (see inflight.go).
func appendMulti(ctx context.Context, c *imapconn.Conn, src archive.Reader, mailbox string, items []*uploadItem, fence func(sent bool) error) []outcome {
	quoted, ok := quoteMailbox(mailbox)
	if !ok {
		return nil
	}
	resp, err := c.RawCommand(ctx, func(w io.Writer) error {
		return writeMultiAppend(w, quoted, src, items, fence)
	})
	out := make([]outcome, len(items))
	var ie *itemError
	switch {
	case errors.As(err, &ie):
		// An archive message could not be read: the command was cut
		// short with the connection, so nothing was stored. That
		// message fails; the others go again on a new connection.
		for i, it := range items {
			out[i] = outcome{err: errNotSent}
			if it == ie.item {
				out[i] = outcome{err: ie.err, messageErr: true}
			}
		}
		return out
	case err != nil:
		return failAll(items, err)
	}
	switch resp.Status {
	case "OK":
		uids := appendUIDs(resp.Code, len(items))
		for i := range out {
			out[i] = outcome{ok: true, uid: uids.uid(i), uidValidity: uids.validity}
		}
		return out
	case "NO":
		return nil
	}
	// BAD: the server did not understand a command built to be valid. It
	// may have misread what followed, so the connection is not trusted.
	c.Close()
	bad := fmt.Errorf("the server rejected the MULTIAPPEND command: %w", resp.Err())
	for i := range out {
		out[i] = outcome{err: bad, messageErr: true}
	}
	return out
}

// itemError ties an archive read failure to the batch item it concerns.
type itemError struct {
	item *uploadItem
	err  error
}

func (e *itemError) Error() string { return e.err.Error() }
func (e *itemError) Unwrap() error { return e.err }

// failAll is the outcome of a batch that failed as a whole.
func failAll(items []*uploadItem, err error) []outcome {
	out := make([]outcome, len(items))
	for i := range out {
		out[i] = outcome{err: err}
	}
	return out
}

// writeMultiAppend writes "APPEND mailbox (flags) "date" {n+}CRLF<bytes>
// (flags) ... CRLF" with each message streamed from the archive, and
// calls fence before the final CRLF.
func writeMultiAppend(w io.Writer, quotedMailbox string, src archive.Reader, items []*uploadItem, fence func(sent bool) error) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("APPEND " + quotedMailbox)
	for _, it := range items {
		bw.WriteString(" (")
		for i, f := range it.flags {
			if i > 0 {
				bw.WriteByte(' ')
			}
			bw.WriteString(string(f))
		}
		bw.WriteByte(')')
		if !it.date.IsZero() {
			bw.WriteString(` "` + it.date.Format("02-Jan-2006 15:04:05 -0700") + `"`)
		}
		bw.WriteString(" {" + strconv.FormatInt(it.c.meta.Size, 10) + "+}\r\n")
		if err := copyExact(bw, src, it.c.folder, it.c.meta); err != nil {
			var se *sourceError
			if errors.As(err, &se) {
				return &itemError{item: it, err: se}
			}
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := fence(false); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\r\n"); err != nil {
		return err
	}
	fence(true) // best effort: an unmarked fence only makes a later run wait a little
	return nil
}

// quoteMailbox encodes a mailbox name in modified UTF-7 as an IMAP quoted
// string. INBOX is sent as it is. Names a quoted string cannot carry
// (CR, LF, NUL) are refused: those go through go-imap instead.
func quoteMailbox(name string) (string, bool) {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", true
	}
	enc, err := utf7.Encoding.NewEncoder().String(name)
	if err != nil || strings.ContainsAny(enc, "\r\n\x00") {
		return "", false
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(enc) + `"`, true
}

// appendUIDSet is an APPENDUID answer: the UIDVALIDITY and the UIDs
// given to the messages in order.
type appendUIDSet struct {
	validity uint32
	uids     []uint32
}

func (s appendUIDSet) uid(i int) uint32 {
	if i < len(s.uids) {
		return s.uids[i]
	}
	return 0
}

// appendUIDs parses "APPENDUID 38505 3955:3957" (or "1,4:5"); anything
// else, or a count that does not match the batch, yields no UIDs.
func appendUIDs(code string, n int) appendUIDSet {
	f := strings.Fields(code)
	if len(f) != 3 || !strings.EqualFold(f[0], "APPENDUID") {
		return appendUIDSet{}
	}
	v, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return appendUIDSet{}
	}
	var uids []uint32
	for _, part := range strings.Split(f[2], ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil || b < a || int(b-a) >= n {
			return appendUIDSet{validity: uint32(v)}
		}
		for u := a; u <= b; u++ {
			uids = append(uids, uint32(u))
		}
	}
	if len(uids) != n {
		return appendUIDSet{validity: uint32(v)}
	}
	return appendUIDSet{validity: uint32(v), uids: uids}
}
