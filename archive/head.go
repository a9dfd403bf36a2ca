package archive

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
)

// headSize is how much of a message is read before anything is written:
// enough for the header of nearly every message, so Message-ID and Date
// are known up front (mbox needs the date for the From line) without a
// second pass over the body.
const headSize = 64 << 10

// readHead reads up to headSize bytes of r into buf (which must have that
// capacity) and returns them; a short message is read entirely.
func readHead(r io.Reader, buf []byte) ([]byte, error) {
	n, err := io.ReadFull(r, buf[:headSize])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return buf[:n], err
}

// headerInfo is what the archive takes from a message's header.
type headerInfo struct {
	messageID string    // raw, trimmed; "" if absent
	date      time.Time // topmost Received, else Date; zero if neither parses
}

// parseHead reads the header block at the start of head. A leading mbox
// "From " line is skipped; a header cut off by the head size is parsed as
// far as it goes; a malformed header falls back to a lenient scan so a
// broken line elsewhere does not hide the Message-ID.
func parseHead(head []byte) headerInfo { return parseHeadFields(head, true) }

// parseHeadFields is parseHead; without wantDate the date is left zero.
// Parsing dates (net/mail tries layout after layout) was a tenth of a
// full IMAP fetch's CPU time, for a date IMAP sends as INTERNALDATE.
func parseHeadFields(head []byte, wantDate bool) headerInfo {
	block := headerBlock(head)
	if !wantDate {
		if id, ok := plainMessageID(block); ok {
			return headerInfo{messageID: id}
		}
	}
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(block)))
	if err != nil {
		hi := headerInfo{messageID: scanHeader(block, "message-id")}
		if wantDate {
			hi.date = dateFromHeader(scanHeader(block, "received"), scanHeader(block, "date"))
		}
		return hi
	}
	hi := headerInfo{messageID: strings.TrimSpace(th.Get("Message-Id"))}
	if wantDate {
		hi.date = dateFromHeader(th.Get("Received"), th.Get("Date"))
	}
	return hi
}

// plainMessageID finds the Message-ID in the common case without building
// a header map (a tenth of a fetch's CPU time went there): the first field
// named Message-ID, on one line, its value one word. ok is false when the
// header holds anything else that could make the full parse answer
// differently (a folded or spaced value, a name with blanks before the
// colon), and then the caller parses. A header with no Message-ID at all
// is answered too: nothing can then be found by either way.
func plainMessageID(block []byte) (string, bool) {
	const name = "message-id"
	for rest := block; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) < len(name) || !bytes.EqualFold(line[:len(name)], []byte(name)) {
			continue
		}
		after := line[len(name):]
		if len(after) == 0 || after[0] != ':' {
			return "", false // "Message-ID :" or a longer name: let the parser judge
		}
		value := bytes.TrimSpace(after[1:])
		if bytes.ContainsAny(value, " \t\r\n") || (len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t')) {
			return "", false // spaces inside, or continued on the next line
		}
		return string(value), true
	}
	return "", true
}

// headerBlock returns the header lines at the start of head, ending with
// the blank line (added when the header is cut off or the message has no
// body).
func headerBlock(head []byte) []byte {
	if bytes.HasPrefix(head, []byte("From ")) {
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			head = head[i+1:]
		} else {
			return []byte("\r\n")
		}
	}
	for i := 0; i < len(head); {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			break
		}
		line := head[i : i+j+1]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return head[:i+j+1]
		}
		i += j + 1
	}
	// No blank line: keep the complete lines and terminate them.
	cut := bytes.LastIndexByte(head, '\n') + 1
	out := make([]byte, 0, cut+2)
	out = append(out, head[:cut]...)
	return append(out, '\r', '\n')
}

// scanHeader finds a header field by (lower-case) name without requiring
// the rest of the header to be well-formed; folded lines are joined.
func scanHeader(block []byte, name string) string {
	lines := strings.SplitAfter(string(block), "\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimRight(k, " \t"), name) {
			continue
		}
		for _, cont := range lines[i+1:] {
			if cont == "" || (cont[0] != ' ' && cont[0] != '\t') {
				break
			}
			v += cont
		}
		return strings.Join(strings.Fields(v), " ")
	}
	return ""
}

// Flag handling shared by both stores.

var systemFlags = map[string]string{
	`\seen`: FlagSeen, `\answered`: FlagAnswered, `\flagged`: FlagFlagged,
	`\deleted`: FlagDeleted, `\draft`: FlagDraft,
}

// normalizeFlags returns the flag set as stored: system flags in their
// canonical spelling, \Recent, empty strings and strings with spaces or
// control characters (which no IMAP flag can hold) dropped, duplicates
// (case-insensitive, as IMAP compares flags) removed, sorted.
func normalizeFlags(flags []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		f = strings.TrimSpace(f)
		if f == "" || strings.EqualFold(f, `\Recent`) || strings.ContainsFunc(f, isSpaceOrControl) {
			continue // flags are atoms: no flag from a server holds these
		}
		if canon, ok := systemFlags[strings.ToLower(f)]; ok {
			f = canon
		}
		if k := strings.ToLower(f); !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// isAtom reports whether a keyword can be written into a file name table
// or a header line as is (RFC 3501 atom characters, no backslash).
func isAtom(kw string) bool {
	if kw == "" {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}
