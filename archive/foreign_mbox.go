package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// MboxVariant says how body lines starting with "From " were escaped by
// the program that wrote a foreign mbox file.
//
// Mail clients (Thunderbird, mutt, Python's mailbox, go-mbox) write mboxo:
// a body line "From x" is stored as ">From x" and nothing else is
// escaped, so an original ">From x" cannot be told apart from an escaped
// "From x". mboxrd writers (getmail, mpop, mox) add one ">" to every
// /^>*From / line, which is exactly reversible. The two agree on ">From "
// and differ only for lines starting with two or more ">" before "From ".
// Nothing in the file says which writer made it, so the default, MboxO,
// removes the one ">" both variants agree on and leaves deeper quoting
// alone: it never alters a quoted ">>From " line of an mboxo file, and for
// an mboxrd file it is wrong only where the original message itself had a
// line starting ">From " (which then keeps an extra ">"). Users who know
// their file is mboxrd choose MboxRD and get it exact.
type MboxVariant int

const (
	MboxO  MboxVariant = iota // ">From " → "From " (mail clients; the default)
	MboxRD                    // ">From " → "From ", ">>From " → ">From ", ...
)

// foreignMboxStripped are the header fields mail clients add to a message
// when they file it in an mbox to keep its status there. They were not
// part of the message as it was received, so they are dropped from the
// bytes restore uploads (Dovecot hides the same fields when it serves an
// mbox over IMAP), and turned into IMAP flags instead.
var foreignMboxStripped = map[string]bool{
	"status":            true,
	"x-status":          true,
	"x-keywords":        true,
	"x-mozilla-status":  true,
	"x-mozilla-status2": true,
	"x-mozilla-keys":    true,
	"x-uid":             true,
	"x-imap":            true,
	"x-imapbase":        true,
}

// Thunderbird's X-Mozilla-Status bits (nsMsgMessageFlags).
const (
	mozRead      = 0x0001
	mozReplied   = 0x0002
	mozMarked    = 0x0004
	mozExpunged  = 0x0008
	mozForwarded = 0x1000
)

const (
	foreignMboxBufSize = 64 << 10
	// foreignFromPeek bounds how much of a "From " line is examined to tell
	// a separator from a body line; the date sits near its start.
	foreignFromPeek = 1024
	// foreignHeaderValueMax caps what is kept of one interesting header
	// field (Message-ID, Date, status fields): a hostile file cannot make
	// the scanner hold more than this per field.
	foreignHeaderValueMax = 8 << 10
)

var foreignFromPrefix = []byte("From ")

// foreignMessageHeaders is what the scanners learn from a message header.
type foreignMessageHeaders struct {
	messageID string
	date      string
	status    string // Status: "RO"
	xstatus   string // X-Status: "AF"
	mozStatus string // X-Mozilla-Status: "0005"
	keywords  []string
}

// foreignHeaderCollector follows a message header line by line and keeps
// the few fields the reader needs, unfolding continuation lines.
type foreignHeaderCollector struct {
	h       foreignMessageHeaders
	current string // lower-cased name of the field being collected, "" if none
	value   []byte
}

// field starts a new header field; line is the whole first line.
func (c *foreignHeaderCollector) field(name string, line []byte) {
	c.finish()
	switch name {
	case "message-id", "date", "status", "x-status", "x-mozilla-status", "x-keywords", "x-mozilla-keys":
		c.current = name
		c.value = append(c.value[:0], line[len(name)+1:]...)
		c.trimValue()
	}
}

// continuation adds a folded line to the current field.
func (c *foreignHeaderCollector) continuation(line []byte) {
	if c.current == "" {
		return
	}
	c.value = append(c.value, line...)
	c.trimValue()
}

func (c *foreignHeaderCollector) trimValue() {
	if len(c.value) > foreignHeaderValueMax {
		c.value = c.value[:foreignHeaderValueMax]
	}
}

// finish files the field being collected.
func (c *foreignHeaderCollector) finish() {
	if c.current == "" {
		return
	}
	v := strings.TrimSpace(strings.NewReplacer("\r", "", "\n", "").Replace(string(c.value)))
	switch c.current {
	case "message-id":
		if c.h.messageID == "" {
			c.h.messageID = v
		}
	case "date":
		if c.h.date == "" {
			c.h.date = v
		}
	case "status":
		c.h.status += v
	case "x-status":
		c.h.xstatus += v
	case "x-mozilla-status":
		if c.h.mozStatus == "" {
			c.h.mozStatus = v
		}
	case "x-keywords", "x-mozilla-keys":
		c.h.keywords = append(c.h.keywords, strings.FieldsFunc(v, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t'
		})...)
	}
	c.current = ""
}

// foreignHeaderName returns the lower-cased field name of a header line,
// or "" when the line is not a "name:" line.
func foreignHeaderName(line []byte) string {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return ""
	}
	for _, ch := range line[:i] {
		if ch <= ' ' || ch >= 0x7f {
			return ""
		}
	}
	return strings.ToLower(string(line[:i]))
}

// foreignMboxMessage streams one message of an mbox file: it starts at the
// message's From_ line and yields the message as the mbox format defines
// it — without the From_ line, without the blank line that separates it
// from the next message, with ">From " escaping undone and the clients'
// status fields removed — and stops, without consuming it, at the next
// From_ line. Line endings are kept as they are in the file.
type foreignMboxMessage struct {
	br      *bufio.Reader
	variant MboxVariant
	pos     int64 // file offset of the next byte br yields

	started     bool // From_ line consumed
	inHeader    bool
	dropField   bool // inside a header field that is not output
	atLineStart bool
	dropLine    bool   // the rest of the current line is not output
	heldBlank   []byte // a held-back blank line: the separator if a From_ line or EOF follows
	pre, out    []byte // output ready to be served, pre first
	done        bool
	atEOF       bool
	err         error

	fromLine string
	headers  foreignHeaderCollector
}

var (
	foreignLF   = []byte("\n")
	foreignCRLF = []byte("\r\n")
)

func newForeignMboxMessage(br *bufio.Reader, pos int64, variant MboxVariant) *foreignMboxMessage {
	return &foreignMboxMessage{br: br, pos: pos, variant: variant, atLineStart: true}
}

func (m *foreignMboxMessage) Read(p []byte) (int, error) {
	for len(m.pre) == 0 && len(m.out) == 0 {
		if m.done {
			if m.err != nil {
				return 0, m.err
			}
			return 0, io.EOF
		}
		m.step()
	}
	if len(m.pre) > 0 {
		n := copy(p, m.pre)
		m.pre = m.pre[n:]
		return n, nil
	}
	n := copy(p, m.out)
	m.out = m.out[n:]
	return n, nil
}

// step consumes one line or line fragment and sets m.pre/m.out to what it
// contributes to the message. m.out may refer to br's buffer: Read hands
// it out completely before the next step touches br.
func (m *foreignMboxMessage) step() {
	if m.atLineStart && m.started {
		if sep, eof := m.atSeparator(); sep {
			m.atEOF = eof
			m.finish()
			return
		}
	}
	frag, err := m.br.ReadSlice('\n')
	m.pos += int64(len(frag))
	switch {
	case err == nil, err == bufio.ErrBufferFull:
	case err == io.EOF && len(frag) > 0:
	case err == io.EOF:
		m.atEOF = true
		m.finish()
		return
	default:
		m.done, m.err = true, err
		return
	}
	complete := frag[len(frag)-1] == '\n'
	switch {
	case m.atLineStart:
		m.lineStart(frag)
	case !m.dropLine:
		m.out = frag
	}
	m.atLineStart = complete
	if complete {
		m.dropLine = false
	}
}

// atSeparator reports whether the next line is the From_ line of the next
// message (sep), or the end of the file (sep and eof).
func (m *foreignMboxMessage) atSeparator() (sep, eof bool) {
	b, err := m.br.Peek(len(foreignFromPrefix))
	if len(b) == 0 && err == io.EOF {
		return true, true
	}
	if !bytes.Equal(b, foreignFromPrefix) {
		return false, false // read errors surface from the next read
	}
	b, _ = m.br.Peek(foreignFromPeek)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	_, ok := foreignParseFromLine(string(b))
	return ok, false
}

// finish ends the message. A held-back blank line belonged to the mbox,
// not to the message: it separated the message from what follows.
func (m *foreignMboxMessage) finish() {
	m.headers.finish()
	m.done = true
	m.heldBlank = nil
}

// lineStart handles the first fragment of a line.
func (m *foreignMboxMessage) lineStart(frag []byte) {
	if !m.started {
		m.started, m.inHeader, m.dropLine = true, true, true
		m.fromLine = string(bytes.TrimRight(frag, "\r\n"))
		return
	}
	if blank := foreignBlankLine(frag); blank != nil {
		m.pre, m.heldBlank = m.heldBlank, blank
		if m.inHeader {
			m.headers.finish()
			m.inHeader, m.dropField = false, false
		}
		return
	}
	m.pre, m.heldBlank = m.heldBlank, nil
	frag = m.unescape(frag)
	if m.inHeader && !m.headerLine(frag) {
		m.dropLine = true
		return
	}
	m.out = frag
}

// headerLine follows the header and reports whether the line is output:
// the status fields clients add (and their continuation lines) are not.
func (m *foreignMboxMessage) headerLine(line []byte) bool {
	if line[0] == ' ' || line[0] == '\t' {
		m.headers.continuation(line)
		return !m.dropField
	}
	name := foreignHeaderName(line)
	m.headers.field(name, line)
	m.dropField = foreignMboxStripped[name]
	return !m.dropField
}

// unescape undoes the From-escaping of the mbox variant.
func (m *foreignMboxMessage) unescape(line []byte) []byte {
	if len(line) < 2 || line[0] != '>' {
		return line
	}
	rest := line[1:]
	if m.variant == MboxRD {
		rest = bytes.TrimLeft(rest, ">")
	}
	if bytes.HasPrefix(rest, foreignFromPrefix) {
		return line[1:]
	}
	return line
}

// foreignBlankLine returns the line ending of an empty line, nil if the
// line is not empty.
func foreignBlankLine(line []byte) []byte {
	switch {
	case len(line) == 1 && line[0] == '\n':
		return foreignLF
	case len(line) == 2 && line[0] == '\r' && line[1] == '\n':
		return foreignCRLF
	}
	return nil
}

var foreignMonths = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

var foreignZones = map[string]int{
	"UT": 0, "UTC": 0, "GMT": 0, "Z": 0,
	"EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600,
	"MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
	"CET": 3600, "CEST": 2 * 3600, "BST": 3600,
}

// foreignParseFromLine parses the date of an mbox From_ line, "From SENDER
// DATE", the way mutt recognises separators: a line is a From_ line only
// if a ctime-style date follows ("Mon Jan  2 15:04:05 2006", with an
// optional zone before or after the year). Requiring the date keeps body
// lines that a careless writer did not escape ("From here on, ...") from
// splitting a message. A date without zone is UTC, as RFC 4155 asks.
func foreignParseFromLine(line string) (time.Time, bool) {
	if !strings.HasPrefix(line, "From ") {
		return time.Time{}, false
	}
	fields := strings.Fields(line[len("From "):])
	for i, f := range fields {
		if _, ok := foreignMonths[strings.ToLower(f)]; !ok || len(f) != 3 {
			continue
		}
		if t, ok := foreignParseCtime(fields[i:]); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

// foreignParseCtime parses "Mon DD HH:MM[:SS] [ZONE] YYYY [ZONE]".
func foreignParseCtime(f []string) (time.Time, bool) {
	if len(f) < 4 {
		return time.Time{}, false
	}
	month := foreignMonths[strings.ToLower(f[0])]
	day, err := strconv.Atoi(f[1])
	if err != nil || day < 1 || day > 31 {
		return time.Time{}, false
	}
	hour, minute, sec, ok := foreignParseClock(f[2])
	if !ok {
		return time.Time{}, false
	}
	rest := f[3:]
	loc := time.UTC
	if z, ok := foreignParseZone(rest[0]); ok && len(rest) > 1 {
		loc, rest = z, rest[1:]
	}
	if len(rest[0]) != 4 {
		return time.Time{}, false
	}
	year, err := strconv.Atoi(rest[0])
	if err != nil || year < 1970 {
		return time.Time{}, false
	}
	if len(rest) > 1 {
		if z, ok := foreignParseZone(rest[1]); ok {
			loc = z
		}
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, loc)
	if t.Day() != day { // 31 Feb and friends
		return time.Time{}, false
	}
	return t, true
}

func foreignParseClock(s string) (h, m, sec int, ok bool) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, false
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) > 2 {
			return 0, 0, 0, false
		}
		v[i] = n
	}
	if v[0] > 23 || v[1] > 59 || v[2] > 60 {
		return 0, 0, 0, false
	}
	return v[0], v[1], v[2], true
}

func foreignParseZone(s string) (*time.Location, bool) {
	if off, ok := foreignZones[strings.ToUpper(s)]; ok {
		return time.FixedZone(strings.ToUpper(s), off), true
	}
	if len(s) == 5 && (s[0] == '+' || s[0] == '-') {
		n, err := strconv.Atoi(s[1:])
		if err != nil {
			return nil, false
		}
		off := (n/100)*3600 + (n%100)*60
		if s[0] == '-' {
			off = -off
		}
		return time.FixedZone("", off), true
	}
	return nil, false
}

// foreignMboxFlags turns the status fields of an mbox message into IMAP
// flags and reports whether the client marked the message deleted.
func foreignMboxFlags(h foreignMessageHeaders) (flags []string, deleted bool) {
	set := map[string]bool{}
	if strings.ContainsRune(h.status, 'R') {
		set[FlagSeen] = true
	}
	for _, ch := range h.xstatus {
		switch ch {
		case 'A':
			set[FlagAnswered] = true
		case 'F':
			set[FlagFlagged] = true
		case 'T':
			set[FlagDraft] = true
		case 'D':
			deleted = true
		}
	}
	if v, err := strconv.ParseUint(h.mozStatus, 16, 32); err == nil && h.mozStatus != "" {
		for bit, flag := range map[uint64]string{mozRead: FlagSeen, mozReplied: FlagAnswered,
			mozMarked: FlagFlagged, mozForwarded: FlagForwarded} {
			if v&bit != 0 {
				set[flag] = true
			}
		}
		if v&mozExpunged != 0 {
			deleted = true
		}
	}
	for _, k := range h.keywords {
		set[k] = true
	}
	if deleted {
		set[FlagDeleted] = true
	}
	return foreignSortedFlags(set), deleted
}

// foreignScanMbox reads an mbox file once and returns the metadata of each
// message: Key is the From_ line's byte offset; Size, SHA256 and MessageID
// describe exactly the bytes foreignOpenMbox yields for that key.
func foreignScanMbox(path string, opt ForeignOptions, keep func(Meta, bool)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(f, foreignMboxBufSize)
	pos, err := foreignSkipBlankLines(br)
	if err != nil {
		return err
	}
	if b, _ := br.Peek(len(foreignFromPrefix)); len(b) == 0 {
		return nil // empty file: an empty folder
	} else if !bytes.Equal(b, foreignFromPrefix) {
		return fmt.Errorf("%s is not an mbox file (it does not start with a From line): %w", path, ErrCorrupt)
	}
	for {
		m := newForeignMboxMessage(br, pos, opt.Mbox)
		h := sha256.New()
		n, err := io.Copy(h, m)
		if err != nil {
			return fmt.Errorf("read %s at byte %d: %w", path, m.pos, err)
		}
		keep(foreignMboxMeta(m, pos, n, hex.EncodeToString(h.Sum(nil)), st.ModTime()))
		if m.atEOF {
			return nil
		}
		pos = m.pos
	}
}

func foreignMboxMeta(m *foreignMboxMessage, offset, size int64, sum string, mtime time.Time) (Meta, bool) {
	flags, deleted := foreignMboxFlags(m.headers.h)
	return Meta{
		Key:       strconv.FormatInt(offset, 10),
		Size:      size,
		SHA256:    sum,
		MessageID: m.headers.h.messageID,
		Flags:     flags,
		Date:      foreignMboxDate(m, mtime),
	}, deleted
}

// foreignMboxDate is the message's INTERNALDATE: the From_ line's date
// (when the client filed it), else the Date header, else the file's mtime.
func foreignMboxDate(m *foreignMboxMessage, mtime time.Time) time.Time {
	if t, ok := foreignParseFromLine(m.fromLine); ok {
		return t
	}
	if t, err := foreignParseDateHeader(m.headers.h.date); err == nil {
		return t
	}
	return mtime
}

// foreignSkipBlankLines consumes blank lines before the first From_ line
// (some writers leave them) and returns how many bytes they took.
func foreignSkipBlankLines(br *bufio.Reader) (int64, error) {
	var pos int64
	for {
		b, err := br.Peek(2)
		switch {
		case len(b) >= 1 && b[0] == '\n':
			br.Discard(1)
			pos++
		case len(b) == 2 && b[0] == '\r' && b[1] == '\n':
			br.Discard(2)
			pos += 2
		case err != nil && !errors.Is(err, io.EOF):
			return pos, err
		default:
			return pos, nil
		}
	}
}

// foreignOpenMbox streams the message whose From_ line is at offset key.
func foreignOpenMbox(path, key string, variant MboxVariant) (io.ReadCloser, error) {
	off, err := strconv.ParseInt(key, 10, 64)
	if err != nil || off < 0 {
		return nil, fmt.Errorf("mbox key %q: %w", key, ErrNoMessage)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !foreignFromLineAt(f, off) {
		f.Close()
		return nil, fmt.Errorf("%s has no message at byte %d (changed since it was read?): %w", path, off, ErrNoMessage)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	m := newForeignMboxMessage(bufio.NewReaderSize(f, foreignMboxBufSize), off, variant)
	return &foreignReadCloser{Reader: m, Closer: f}, nil
}

// foreignFromLineAt checks that a From_ line starts at off, at the start
// of a line.
func foreignFromLineAt(f *os.File, off int64) bool {
	buf := make([]byte, 1+len(foreignFromPrefix))
	start := off - 1
	if start < 0 {
		start, buf[0] = 0, '\n'
		if _, err := f.ReadAt(buf[1:], 0); err != nil {
			return false
		}
	} else if _, err := f.ReadAt(buf, start); err != nil {
		return false
	}
	return buf[0] == '\n' && bytes.Equal(buf[1:], foreignFromPrefix)
}

type foreignReadCloser struct {
	io.Reader
	io.Closer
}
