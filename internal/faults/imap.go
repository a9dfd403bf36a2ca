package faults

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IMAPServer is a small scriptable IMAP4rev1 server for hostile-server
// tests. It serves an account of Folders read-only (CAPABILITY, LOGIN,
// AUTHENTICATE PLAIN, LIST, STATUS, EXAMINE/SELECT, UID SEARCH, UID FETCH,
// NOOP, LOGOUT) and lets a test take over any command with a Hook, so a
// session can send what no sane server sends: names no file system takes,
// literals that lie, endless lines, expunges mid-fetch.
//
// Set the fields before Start; Folders may be changed between sessions
// under Lock/Unlock.
type IMAPServer struct {
	// Capabilities advertised in the greeting and to CAPABILITY. Default
	// "IMAP4rev1 LITERAL+ AUTH=PLAIN".
	Capabilities string
	// User and Password accepted by LOGIN and AUTHENTICATE PLAIN; any
	// password is accepted when Password is empty.
	User, Password string
	// Delimiter is the hierarchy separator LIST reports. Default "/".
	Delimiter string
	Folders   []*Folder
	// Hook sees every command first; when it returns true it has answered
	// the command itself (with the Session's writers, and Default for the
	// built-in answer). nil: every command gets the built-in answer.
	Hook func(s *Session, c *Command) bool

	mu       sync.Mutex
	ln       net.Listener
	sessions int
	commands []string
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
	closed   bool
}

// Folder is one mailbox of the scripted account.
type Folder struct {
	// Name is the mailbox name on the wire, as the client sends it back
	// in EXAMINE and STATUS (after unquoting).
	Name string
	// Wire, when set, is written in LIST responses instead of the quoted
	// Name, verbatim: a literal ("{3}\r\na\x00b"), an unterminated
	// modified UTF-7 atom, anything.
	Wire string
	// Attrs are LIST attributes, e.g. `\Sent`.
	Attrs       string
	UIDValidity uint32
	Messages    []Message
}

// Message is one message of a Folder.
type Message struct {
	UID   uint32
	Flags []string
	Date  time.Time
	Body  []byte
}

// Command is one client command.
type Command struct {
	Tag  string
	Name string // upper case, "UID FETCH" for UID commands
	Args string // the rest of the line, literals inlined
	Line string // the whole line as received (literals inlined)
}

// Session is one client connection.
type Session struct {
	N      int // 1-based session number
	srv    *IMAPServer
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	folder *Folder // selected folder
}

// Start listens on a free loopback port and serves until Close.
func (s *IMAPServer) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if s.Capabilities == "" {
		s.Capabilities = "IMAP4rev1 LITERAL+ AUTH=PLAIN"
	}
	if s.Delimiter == "" {
		s.Delimiter = "/"
	}
	s.ln = ln
	s.conns = map[net.Conn]bool{}
	s.wg.Add(1)
	go s.accept()
	return nil
}

// Addr is "127.0.0.1:port".
func (s *IMAPServer) Addr() string { return s.ln.Addr().String() }

// Lock and Unlock guard Folders while sessions run.
func (s *IMAPServer) Lock()   { s.mu.Lock() }
func (s *IMAPServer) Unlock() { s.mu.Unlock() }

// Commands returns every command line received so far (literals inlined,
// AUTHENTICATE and LOGIN arguments left out).
func (s *IMAPServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Sessions is the number of connections accepted so far.
func (s *IMAPServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Close stops the server and cuts every session.
func (s *IMAPServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *IMAPServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.sessions++
		sess := &Session{N: s.sessions, srv: s, conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.serve()
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// maxCommand bounds one command line: the server is a test fixture, not a
// victim.
const maxCommand = 1 << 20

func (ss *Session) serve() {
	ss.Printf("* OK [CAPABILITY %s] faults IMAP ready", ss.srv.Capabilities)
	if ss.Flush() != nil {
		return
	}
	for {
		c, err := ss.readCommand()
		if err != nil {
			return
		}
		ss.srv.mu.Lock()
		if c.Name == "LOGIN" || c.Name == "AUTHENTICATE" {
			ss.srv.commands = append(ss.srv.commands, c.Tag+" "+c.Name+" ...")
		} else {
			ss.srv.commands = append(ss.srv.commands, c.Line)
		}
		hook := ss.srv.Hook
		ss.srv.mu.Unlock()
		if hook == nil || !hook(ss, c) {
			if !ss.Default(c) {
				ss.Flush() //nolint:errcheck // the session ends anyway
				return
			}
		}
		if ss.Flush() != nil {
			return
		}
	}
}

// readCommand reads one command, answering synchronising literals with a
// continuation and inlining every literal into Args and Line.
func (ss *Session) readCommand() (*Command, error) {
	var line strings.Builder
	for {
		part, err := ss.readLine()
		if err != nil {
			return nil, err
		}
		n, plus, ok := trailingLiteral(part)
		if !ok {
			line.WriteString(part)
			break
		}
		line.WriteString(part)
		line.WriteString("\r\n")
		if !plus {
			ss.Printf("+ go ahead")
			if err := ss.Flush(); err != nil {
				return nil, err
			}
		}
		if line.Len()+n > maxCommand {
			return nil, fmt.Errorf("command too long")
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(ss.r, buf); err != nil {
			return nil, err
		}
		line.Write(buf)
	}
	return parseCommand(line.String()), nil
}

func (ss *Session) readLine() (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := ss.r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxCommand {
			return "", fmt.Errorf("command line too long")
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// trailingLiteral finds "{n}" or "{n+}" at the end of a command line.
func trailingLiteral(line string) (n int, plus, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	num := line[i+1 : len(line)-1]
	if strings.HasSuffix(num, "+") {
		num, plus = num[:len(num)-1], true
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 0 {
		return 0, false, false
	}
	return v, plus, true
}

func parseCommand(line string) *Command {
	c := &Command{Line: line}
	tag, rest, _ := strings.Cut(line, " ")
	c.Tag = tag
	name, args, _ := strings.Cut(rest, " ")
	c.Name = strings.ToUpper(name)
	if c.Name == "UID" {
		sub, more, _ := strings.Cut(args, " ")
		c.Name = "UID " + strings.ToUpper(sub)
		args = more
	}
	c.Args = args
	return c
}

// Printf writes one response line (CRLF added).
func (ss *Session) Printf(format string, args ...any) {
	fmt.Fprintf(ss.w, format, args...)
	ss.w.WriteString("\r\n")
}

// Write writes raw bytes.
func (ss *Session) Write(b []byte) (int, error) { return ss.w.Write(b) }

// Flush sends what was written.
func (ss *Session) Flush() error { return ss.w.Flush() }

// Close ends the session's connection.
func (ss *Session) Close() error { return ss.conn.Close() }

// Selected is the folder of the last successful EXAMINE/SELECT.
func (ss *Session) Selected() *Folder { return ss.folder }

// Default answers c as the built-in server does. It reports false when the
// session should end (LOGOUT).
func (ss *Session) Default(c *Command) bool {
	switch c.Name {
	case "CAPABILITY":
		ss.Printf("* CAPABILITY %s", ss.srv.Capabilities)
		ss.Printf("%s OK done", c.Tag)
	case "LOGIN":
		ss.login(c, loginArgs(c.Args))
	case "AUTHENTICATE":
		ss.authenticate(c)
	case "NOOP", "CHECK", "UNSELECT", "CLOSE", "ID", "ENABLE":
		ss.Printf("%s OK done", c.Tag)
	case "NAMESPACE":
		ss.Printf(`* NAMESPACE (("" %q)) NIL NIL`, ss.srv.Delimiter)
		ss.Printf("%s OK done", c.Tag)
	case "LOGOUT":
		ss.Printf("* BYE bye")
		ss.Printf("%s OK done", c.Tag)
		return false
	case "LIST", "LSUB":
		ss.list(c)
	case "STATUS":
		ss.status(c)
	case "EXAMINE", "SELECT":
		ss.examine(c)
	case "UID SEARCH", "SEARCH":
		ss.search(c)
	case "UID FETCH", "FETCH":
		ss.fetch(c)
	default:
		ss.Printf("%s BAD unknown command", c.Tag)
	}
	return true
}

func loginArgs(args string) []string {
	var out []string
	for args != "" {
		var word string
		word, args = nextString(args)
		out = append(out, word)
	}
	return out
}

func (ss *Session) login(c *Command, args []string) {
	if len(args) == 2 && args[0] == ss.srv.User && (ss.srv.Password == "" || args[1] == ss.srv.Password) {
		ss.Printf("%s OK [CAPABILITY %s] logged in", c.Tag, ss.srv.Capabilities)
		return
	}
	ss.Printf("%s NO [AUTHENTICATIONFAILED] invalid credentials", c.Tag)
}

func (ss *Session) authenticate(c *Command) {
	mech, ir, _ := strings.Cut(c.Args, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		ss.Printf("%s NO unsupported mechanism", c.Tag)
		return
	}
	if ir == "" {
		ss.Printf("+ ")
		if ss.Flush() != nil {
			return
		}
		line, err := ss.readLine()
		if err != nil {
			return
		}
		ir = line
	}
	user, pass, ok := decodePlain(ir)
	if !ok {
		ss.Printf("%s BAD bad PLAIN response", c.Tag)
		return
	}
	ss.login(c, []string{user, pass})
}

// folderArg finds the folder named by the first argument.
func (ss *Session) folderArg(args string) (*Folder, string) {
	name, _ := nextString(args)
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	for _, f := range ss.srv.Folders {
		if f.Name == name || strings.EqualFold(name, "INBOX") && strings.EqualFold(f.Name, "INBOX") {
			return f, name
		}
	}
	return nil, name
}

func (ss *Session) list(c *Command) {
	ref, rest := nextString(c.Args)
	pattern, _ := nextString(rest)
	if ref == "" && pattern == "" {
		ss.Printf(`* LIST (\Noselect) %q ""`, ss.srv.Delimiter)
		ss.Printf("%s OK done", c.Tag)
		return
	}
	ss.srv.mu.Lock()
	folders := append([]*Folder(nil), ss.srv.Folders...)
	ss.srv.mu.Unlock()
	for _, f := range folders {
		wire := f.Wire
		if wire == "" {
			wire = Quote(f.Name)
		}
		fmt.Fprintf(ss.w, "* %s (%s) %q %s\r\n", c.Name, f.Attrs, ss.srv.Delimiter, wire)
	}
	ss.Printf("%s OK done", c.Tag)
}

func (ss *Session) status(c *Command) {
	f, name := ss.folderArg(c.Args)
	if f == nil {
		ss.Printf("%s NO [NONEXISTENT] no such mailbox", c.Tag)
		return
	}
	ss.srv.mu.Lock()
	n, next, validity := len(f.Messages), f.uidNext(), f.UIDValidity
	ss.srv.mu.Unlock()
	ss.Printf("* STATUS %s (MESSAGES %d UIDNEXT %d UIDVALIDITY %d UNSEEN 0)", Quote(name), n, next, validity)
	ss.Printf("%s OK done", c.Tag)
}

func (f *Folder) uidNext() uint32 {
	next := uint32(1)
	for _, m := range f.Messages {
		next = max(next, m.UID+1)
	}
	return next
}

func (ss *Session) examine(c *Command) {
	f, _ := ss.folderArg(c.Args)
	if f == nil {
		ss.Printf("%s NO [NONEXISTENT] no such mailbox", c.Tag)
		return
	}
	ss.folder = f
	ss.srv.mu.Lock()
	n, next, validity := len(f.Messages), f.uidNext(), f.UIDValidity
	ss.srv.mu.Unlock()
	ss.Printf(`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`)
	ss.Printf(`* OK [PERMANENTFLAGS ()] read-only`)
	ss.Printf("* %d EXISTS", n)
	ss.Printf("* 0 RECENT")
	ss.Printf("* OK [UIDVALIDITY %d] UIDs valid", validity)
	ss.Printf("* OK [UIDNEXT %d] next", next)
	ss.Printf("%s OK [READ-ONLY] done", c.Tag)
}

func (ss *Session) search(c *Command) {
	f := ss.folder
	if f == nil {
		ss.Printf("%s BAD no mailbox selected", c.Tag)
		return
	}
	ss.srv.mu.Lock()
	var b strings.Builder
	b.WriteString("* SEARCH")
	for i, m := range f.Messages {
		if c.Name == "UID SEARCH" {
			fmt.Fprintf(&b, " %d", m.UID)
		} else {
			fmt.Fprintf(&b, " %d", i+1)
		}
	}
	ss.srv.mu.Unlock()
	ss.Printf("%s", b.String())
	ss.Printf("%s OK done", c.Tag)
}

// FetchItems are what a FETCH asks for, as the built-in server reads them.
type FetchItems struct {
	Body bool // BODY[] or BODY.PEEK[] or RFC822
}

// ParseFetch returns the set and items of a FETCH or UID FETCH.
func ParseFetch(c *Command) (set string, items FetchItems) {
	set, rest, _ := strings.Cut(c.Args, " ")
	up := strings.ToUpper(rest)
	items.Body = strings.Contains(up, "BODY[]") || strings.Contains(up, "BODY.PEEK[]") || strings.Contains(up, "RFC822 ") || strings.HasSuffix(up, "RFC822)")
	return set, items
}

// Matching returns the messages of the selected folder (with their
// sequence numbers) that a FETCH's set names.
func (ss *Session) Matching(c *Command) (seqs []int, msgs []Message) {
	f := ss.folder
	if f == nil {
		return nil, nil
	}
	set, _ := ParseFetch(c)
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	for i, m := range f.Messages {
		key := uint32(i + 1)
		if c.Name == "UID FETCH" {
			key = m.UID
		}
		if inSet(set, key, f.uidNext()) {
			seqs = append(seqs, i+1)
			msgs = append(msgs, m)
		}
	}
	return seqs, msgs
}

func (ss *Session) fetch(c *Command) {
	if ss.folder == nil {
		ss.Printf("%s BAD no mailbox selected", c.Tag)
		return
	}
	_, items := ParseFetch(c)
	seqs, msgs := ss.Matching(c)
	for i, m := range msgs {
		ss.FetchResponse(seqs[i], m, items.Body, len(m.Body), m.Body)
	}
	ss.Printf("%s OK done", c.Tag)
}

// FetchResponse writes one FETCH response: UID, RFC822.SIZE (size),
// FLAGS, INTERNALDATE and, with body, a literal announced as len(body).
func (ss *Session) FetchResponse(seq int, m Message, body bool, size int, data []byte) {
	fmt.Fprintf(ss.w, "* %d FETCH (UID %d RFC822.SIZE %d FLAGS (%s) INTERNALDATE %q", seq, m.UID, size,
		strings.Join(m.Flags, " "), m.Date.Format("02-Jan-2006 15:04:05 -0700"))
	if body {
		fmt.Fprintf(ss.w, " BODY[] {%d}\r\n", len(data))
		ss.w.Write(data)
	}
	ss.w.WriteString(")\r\n")
}

// inSet reports whether n is in an IMAP sequence set ("1:*", "3,5:7").
func inSet(set string, n, star uint32) bool {
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, okA := setNumber(lo, star)
		if !okA {
			continue
		}
		b := a
		if isRange {
			var okB bool
			if b, okB = setNumber(hi, star); !okB {
				continue
			}
		}
		if a > b {
			a, b = b, a
		}
		if n >= a && n <= b {
			return true
		}
	}
	return false
}

func setNumber(s string, star uint32) (uint32, bool) {
	if s == "*" {
		return max(star-1, 1), true
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// nextString reads one IMAP astring (atom, quoted string, or an inlined
// literal "{n}\r\n...") from the front of s.
func nextString(s string) (word, rest string) {
	s = strings.TrimLeft(s, " ")
	switch {
	case s == "":
		return "", ""
	case s[0] == '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return b.String(), s[i+1:]
			default:
				b.WriteByte(s[i])
			}
		}
		return b.String(), ""
	case s[0] == '{':
		end := strings.Index(s, "}\r\n")
		if end > 0 {
			n, err := strconv.Atoi(strings.TrimSuffix(s[1:end], "+"))
			start := end + 3
			if err == nil && start+n <= len(s) {
				return s[start : start+n], s[start+n:]
			}
		}
	}
	word, rest, _ = strings.Cut(s, " ")
	return word, rest
}

// Quote writes s as an IMAP quoted string.
func Quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Literal writes s as an IMAP literal, which can carry any byte but CR/LF
// rules aside (NUL included, unlike a quoted string).
func Literal(s string) string {
	return fmt.Sprintf("{%d}\r\n%s", len(s), s)
}

// decodePlain reads a SASL PLAIN response: base64 of "authzid\0user\0pass".
func decodePlain(b64 string) (user, pass string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// Hold keeps the session silent until the client hangs up or the server
// closes: a hung server, as the client sees it. It discards what the
// client sends meanwhile.
func (ss *Session) Hold() {
	ss.Flush()                //nolint:errcheck // a dead connection ends the hold anyway
	io.Copy(io.Discard, ss.r) //nolint:errcheck // ends with the connection
}
