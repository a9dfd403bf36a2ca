package imapconn

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// listFixer keeps one bad folder name from breaking a whole LIST.
//
// imapclient decodes every mailbox name in a LIST (or STATUS) reply from
// modified UTF-7; one name that is not valid (a bare "&", as some servers
// store "Tom & Jerry" verbatim; control characters; Latin-1 bytes) fails
// the decoder, and with it the LIST and the connection: no folder of the
// account could be backed up. While our own LIST runs, the fixer rewrites
// such names in the byte stream into valid modified UTF-7 standing for the
// same text, and remembers them so the caller can report them by name
// (Mailbox.BadName) and go on with the others.
type listFixer struct {
	mu      sync.Mutex
	tag     string // the LIST command's tag, learnt when the client sends it
	held    []byte // an incomplete line
	out     []byte // rewritten bytes not yet handed to imapclient
	literal int64  // literal bytes to pass through unchanged
	done    bool   // the LIST's tagged reply went by: pass everything through
	renamed map[string]string

	// A LIST or STATUS line whose mailbox name comes as a literal is
	// collected whole (prefix, name, rest of the line) before it is
	// checked.
	nameLit  []byte // the line up to and including the literal marker
	nameWant int64  // literal bytes still to collect
	nameBuf  []byte // the literal (the name)
	inRest   bool   // collecting the rest of the line after the name
}

// maxNameLiteral bounds a mailbox name sent as a literal that the fixer
// examines; longer ones pass unchanged.
const maxNameLiteral = 64 << 10

func newListFixer() *listFixer { return &listFixer{renamed: map[string]string{}} }

// sawCommand learns the LIST's tag from the client's command line.
func (f *listFixer) sawCommand(tag string, head []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tag == "" && hasPrefixFold(strings.TrimPrefix(string(head), tag+" "), "LIST ") {
		f.tag = tag
	}
}

// feed takes bytes from the server and queues them, rewritten, for
// imapclient.
func (f *listFixer) feed(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(p) > 0 {
		if f.done {
			f.out = append(f.out, p...)
			return
		}
		if f.literal > 0 {
			k := int(min(int64(len(p)), f.literal))
			f.out = append(f.out, p[:k]...)
			f.literal -= int64(k)
			p = p[k:]
			continue
		}
		if f.nameWant > 0 {
			k := int(min(int64(len(p)), f.nameWant))
			f.nameBuf = append(f.nameBuf, p[:k]...)
			f.nameWant -= int64(k)
			p = p[k:]
			if f.nameWant == 0 {
				f.inRest = true
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.held = append(f.held, p...)
			return
		}
		line := append(f.held, p[:i+1]...)
		f.held = nil
		p = p[i+1:]
		if f.inRest {
			f.inRest = false
			f.out = append(f.out, f.fixLiteralName(line)...)
			continue
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if n := literalSize(tailOf(trimmed)); n > 0 {
			if n <= maxNameLiteral && isNameLine(trimmed) {
				f.nameLit, f.nameWant, f.nameBuf = line, n, nil
				continue
			}
			f.literal = n
			f.out = append(f.out, line...)
			continue
		}
		f.out = append(f.out, f.fixLine(trimmed, line)...)
		if f.tag != "" && bytes.HasPrefix(line, []byte(f.tag+" ")) {
			f.done = true
		}
	}
}

func tailOf(b []byte) []byte {
	if len(b) > 16 {
		return b[len(b)-16:]
	}
	return b
}

// take hands queued bytes to the reader; done reports that the LIST is
// over and nothing is queued.
func (f *listFixer) take(b []byte) (n int, done bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = copy(b, f.out)
	f.out = f.out[n:]
	return n, f.done && len(f.out) == 0
}

// isNameLine reports a LIST/LSUB/STATUS response line, whose literal (if
// it ends with one) is the mailbox name.
func isNameLine(s []byte) bool {
	return hasPrefixFold(string(s[:min(len(s), 10)]), "* LIST ") || hasPrefixFold(string(s[:min(len(s), 10)]), "* LSUB ") ||
		hasPrefixFold(string(s[:min(len(s), 10)]), "* STATUS ")
}

// fixLiteralName finishes a line whose mailbox name came as a literal:
// unchanged if the name is valid, else with the name as a valid quoted
// string.
func (f *listFixer) fixLiteralName(rest []byte) []byte {
	lit, name := f.nameLit, string(f.nameBuf)
	f.nameLit, f.nameBuf = nil, nil
	if validMUTF7(name) {
		return append(append(append([]byte{}, lit...), name...), rest...)
	}
	prefix := bytes.TrimRight(lit, "\r\n")
	prefix = prefix[:bytes.LastIndexByte(prefix, '{')]
	fixed := encodeVerbatim(name)
	f.renamed[decodeVerbatim(fixed)] = name
	out := append(append([]byte{}, prefix...), quoteIMAP(fixed)...)
	return append(out, rest...)
}

// fixLine rewrites the mailbox name of a "* LIST" or "* STATUS" line if
// it is not valid modified UTF-7.
func (f *listFixer) fixLine(trimmed, line []byte) []byte {
	s := string(trimmed)
	var start int
	switch {
	case hasPrefixFold(s, "* LIST ") || hasPrefixFold(s, "* LSUB "):
		start = listNameStart(s)
	case hasPrefixFold(s, "* STATUS "):
		start = len("* STATUS ")
	default:
		return line
	}
	if start < 0 || start >= len(s) {
		return line
	}
	name, end := readMailboxToken(s, start)
	if end < 0 || validMUTF7(name) {
		return line
	}
	fixed := encodeVerbatim(name)
	f.renamed[decodeVerbatim(fixed)] = name
	return []byte(s[:start] + quoteIMAP(fixed) + s[end:] + "\r\n")
}

// listNameStart finds the mailbox of `* LIST (attrs) delim mailbox ...`.
func listNameStart(s string) int {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return -1
	}
	close := strings.IndexByte(s[open:], ')')
	if close < 0 {
		return -1
	}
	i := open + close + 1
	if i >= len(s) || s[i] != ' ' {
		return -1
	}
	i++
	// The delimiter: a quoted character or NIL.
	if _, end := readMailboxToken(s, i); end >= 0 && end < len(s) && s[end] == ' ' {
		return end + 1
	}
	return -1
}

// readMailboxToken reads a quoted string or an atom at s[i:], returning
// its value and the index after it (-1 if malformed).
func readMailboxToken(s string, i int) (string, int) {
	if i < len(s) && s[i] == '"' {
		var b strings.Builder
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				if j+1 < len(s) {
					j++
					b.WriteByte(s[j])
				}
			case '"':
				return b.String(), j + 1
			default:
				b.WriteByte(s[j])
			}
		}
		return "", -1
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' {
		j++
	}
	if j == i {
		return "", -1
	}
	return s[i:j], j
}

func quoteIMAP(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// encodeVerbatim makes a valid modified UTF-7 string that decodes to the
// server's bytes taken as text: "&" escaped as "&-", control characters
// and bytes that are not UTF-8 shown as "?".
func encodeVerbatim(raw string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(raw, "?") {
		switch {
		case r == '&':
			b.WriteString("&-")
		case r < 0x20 || r == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// decodeVerbatim is what imapclient makes of encodeVerbatim's output.
func decodeVerbatim(s string) string { return strings.ReplaceAll(s, "&-", "&") }

var mutf7Base64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// validMUTF7 reports whether imapclient can decode s as a mailbox name:
// modified UTF-7 (RFC 3501 5.1.3), raw UTF-8 also accepted.
func validMUTF7(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	ascii := true // the previous segment was not base64 (no null shift)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c != '&' {
			ascii = true
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return false
		}
		seg := s[i+1 : i+1+end]
		i += end + 1
		if seg == "" {
			ascii = true
			continue
		}
		if !ascii || !validB64Segment(seg) {
			return false
		}
		ascii = false
	}
	return true
}

func validB64Segment(seg string) bool {
	b, err := mutf7Base64.DecodeString(seg)
	if err != nil || len(b)%2 != 0 || len(b) == 0 {
		return false
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	for i := 0; i < len(units); i++ {
		r := rune(units[i])
		if utf16.IsSurrogate(r) {
			if i+1 >= len(units) || utf16.DecodeRune(r, rune(units[i+1])) == utf8.RuneError {
				return false
			}
			i++
			continue
		}
		if r >= 0x20 && r <= 0x7e {
			return false // printable ASCII must not be base64-encoded
		}
	}
	return true
}
