package imaptest

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mini is a small scriptable IMAP server: enough of IMAP4rev1 for a
// read-only client (LOGIN, LIST, STATUS, EXAMINE, FETCH, UID FETCH,
// SEARCH UID) over a few folders, with switches for the ways real servers
// misbehave. The in-memory server of go-imap cannot be made to misbehave;
// this one exists for that.
type Mini struct {
	*Fake

	mu      sync.Mutex
	folders map[string]*MiniFolder
	order   []string

	// Misbehaviour switches (set before or between sessions).
	UIDAfterLiteral bool            // "BODY[] {n} ... UID u": imapclient cannot route it by UID
	BodyFirst       bool            // body before FLAGS and INTERNALDATE
	SkipInUIDFetch  map[uint32]bool // never delivered by UID FETCH (seq FETCH works)
	NeverDeliver    map[uint32]bool // body never delivered (listed, found by SEARCH)
	HideInListing   map[uint32]bool // left out of FETCH responses without a body
	SizeLie         int64           // added to RFC822.SIZE
	StallAfter      int             // go silent after sending this many bodies (0: never)
	ExamineFails    map[string]bool // EXAMINE answers NO
	ExpungeDuring   map[uint32]bool // EXPUNGE these (in the folder) when a body FETCH starts
	ExtraNames      []string        // extra raw LIST names (hostile names), no messages
	// HoldCompletions holds back the tagged completion of every FETCH
	// and SEARCH until the client sends an EXAMINE, SELECT or LOGOUT, or
	// sends nothing for this long (counted in HoldsTimedOut): a client
	// that waits for a folder's last answers before it opens the next
	// folder pays the wait at every folder.
	HoldCompletions time.Duration
	HoldsTimedOut   int
	StatusSize      bool     // offer STATUS=SIZE (RFC 8438): clients can size a folder before EXAMINE
	LiteralExtra    string   // sent after each body literal: more bytes than announced
	AnnounceSize    int64    // announced body literal size instead of the real one
	BodiesSent      int      // bodies sent so far (all sessions)
	Commands        []string // every command line received
	sessionsStarted int
}

// MiniFolder is one folder of a Mini server.
type MiniFolder struct {
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	Msgs        []MiniMsg
}

// MiniMsg is one message of a MiniFolder.
type MiniMsg struct {
	UID   uint32
	Flags []string
	Date  time.Time
	Body  []byte
}

// StartMini starts a Mini server with an empty INBOX.
func StartMini(t testing.TB) *Mini {
	m := &Mini{folders: map[string]*MiniFolder{}}
	m.AddFolder("INBOX", 1)
	m.Fake = StartFake(t, m.serve)
	return m
}

// AddFolder adds (or resets) a folder with the given UIDVALIDITY.
func (m *Mini) AddFolder(name string, uidValidity uint32) *MiniFolder {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &MiniFolder{Name: name, UIDValidity: uidValidity, UIDNext: 1}
	if _, ok := m.folders[name]; !ok {
		m.order = append(m.order, name)
	}
	m.folders[name] = f
	return f
}

// Add appends a message to a folder and returns its UID.
func (m *Mini) Add(folder string, body []byte, flags []string, date time.Time) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.folders[folder]
	uid := f.UIDNext
	f.UIDNext++
	f.Msgs = append(f.Msgs, MiniMsg{UID: uid, Flags: flags, Date: date, Body: body})
	return uid
}

// Folder returns a folder's current messages (a copy).
func (m *Mini) Folder(name string) MiniFolder {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := *m.folders[name]
	f.Msgs = append([]MiniMsg(nil), f.Msgs...)
	return f
}

// Set changes switches under the server's lock.
func (m *Mini) Set(fn func(m *Mini)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m)
}

// Sessions reports how many connections the server has accepted.
func (m *Mini) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessionsStarted
}

// Sent reports how many bodies were sent.
func (m *Mini) Sent() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.BodiesSent
}

const miniCaps = "IMAP4rev1 LITERAL+ UIDPLUS"

// caps is the capability list: miniCaps, and STATUS=SIZE when StatusSize.
func (m *Mini) caps() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.StatusSize {
		return miniCaps + " STATUS=SIZE"
	}
	return miniCaps
}

func (m *Mini) serve(c *FakeConn) {
	m.mu.Lock()
	m.sessionsStarted++
	m.mu.Unlock()
	c.Send("* OK [CAPABILITY " + m.caps() + "] mini ready\r\n")
	var sel *MiniFolder
	var held []string // completions held back (HoldCompletions)
	flush := func() {
		c.Send(strings.Join(held, ""))
		held = nil
	}
	for {
		m.mu.Lock()
		hold := m.HoldCompletions
		m.mu.Unlock()
		if len(held) > 0 && hold > 0 {
			c.SetReadDeadline(time.Now().Add(hold))
		}
		tag, name, line, err := c.Command()
		c.SetReadDeadline(time.Time{})
		if ne, ok := err.(net.Error); ok && ne.Timeout() && len(held) > 0 {
			m.mu.Lock()
			m.HoldsTimedOut++
			m.mu.Unlock()
			flush()
			continue
		}
		if err != nil {
			return
		}
		if len(held) > 0 && (name == "EXAMINE" || name == "SELECT" || name == "LOGOUT") {
			flush()
		}
		complete := func(text string) {
			if hold > 0 {
				held = append(held, tag+" "+text+"\r\n")
				return
			}
			c.Send(tag + " " + text + "\r\n")
		}
		m.mu.Lock()
		m.Commands = append(m.Commands, line)
		m.mu.Unlock()
		args := strings.TrimSpace(strings.TrimPrefix(line, tag+" "))
		args = strings.TrimSpace(args[len(name):])
		switch name {
		case "CAPABILITY":
			c.Send("* CAPABILITY " + m.caps() + "\r\n" + tag + " OK done\r\n")
		case "LOGIN":
			c.Send(tag + " OK [CAPABILITY " + m.caps() + "] logged in\r\n")
		case "NOOP", "UNSELECT", "CHECK":
			c.Send(tag + " OK done\r\n")
		case "LOGOUT":
			c.Send("* BYE bye\r\n" + tag + " OK done\r\n")
			return
		case "LIST":
			m.list(c, tag, args)
		case "STATUS":
			m.status(c, tag, args)
		case "EXAMINE", "SELECT":
			sel = m.examine(c, tag, args)
		case "UID FETCH", "FETCH":
			if sel == nil {
				c.Send(tag + " BAD no folder selected\r\n")
				continue
			}
			if !m.fetch(c, sel, name == "UID FETCH", args, complete) {
				c.Hang()
				return
			}
		case "UID SEARCH", "SEARCH":
			m.search(c, tag, sel, name == "UID SEARCH", args, complete)
		default:
			c.Send(tag + " BAD unknown command\r\n")
		}
	}
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' {
		return strings.ReplaceAll(strings.ReplaceAll(s[1:len(s)-1], `\"`, `"`), `\\`, `\`)
	}
	return s
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

func (m *Mini) list(c *FakeConn, tag, args string) {
	if strings.HasSuffix(args, `""`) && !strings.HasSuffix(args, `"*"`) {
		c.Send(`* LIST (\Noselect) "/" ""` + "\r\n" + tag + " OK done\r\n")
		return
	}
	m.mu.Lock()
	var b strings.Builder
	for _, n := range m.order {
		fmt.Fprintf(&b, "* LIST () \"/\" %s\r\n", quote(n))
	}
	for _, n := range m.ExtraNames {
		fmt.Fprintf(&b, "* LIST () \"/\" %s\r\n", n)
	}
	m.mu.Unlock()
	c.Send(b.String() + tag + " OK done\r\n")
}

// splitMailbox splits `"name" rest` or `name rest`.
func splitMailbox(args string) (string, string) {
	args = strings.TrimSpace(args)
	if strings.HasPrefix(args, `"`) {
		for i := 1; i < len(args); i++ {
			if args[i] == '\\' {
				i++
				continue
			}
			if args[i] == '"' {
				return unquote(args[:i+1]), strings.TrimSpace(args[i+1:])
			}
		}
	}
	name, rest, _ := strings.Cut(args, " ")
	return name, rest
}

func (m *Mini) status(c *FakeConn, tag, args string) {
	name, _ := splitMailbox(args)
	m.mu.Lock()
	f := m.folders[name]
	var line string
	if f != nil {
		var size string
		if m.StatusSize {
			n := 0
			for _, msg := range f.Msgs {
				n += len(msg.Body)
			}
			size = fmt.Sprintf(" SIZE %d", n)
		}
		line = fmt.Sprintf("* STATUS %s (MESSAGES %d UIDNEXT %d UIDVALIDITY %d%s)\r\n", quote(name), len(f.Msgs), f.UIDNext, f.UIDValidity, size)
	}
	m.mu.Unlock()
	if f == nil {
		c.Send(tag + " NO no such folder\r\n")
		return
	}
	c.Send(line + tag + " OK done\r\n")
}

func (m *Mini) examine(c *FakeConn, tag, args string) *MiniFolder {
	name, _ := splitMailbox(args)
	m.mu.Lock()
	f := m.folders[name]
	fails := m.ExamineFails[name]
	var resp string
	if f != nil {
		resp = fmt.Sprintf("* %d EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY %d] ok\r\n* OK [UIDNEXT %d] ok\r\n* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n",
			len(f.Msgs), f.UIDValidity, f.UIDNext)
	}
	m.mu.Unlock()
	if f == nil || fails {
		c.Send(tag + " NO Mailbox doesn't exist: " + name + "\r\n")
		return nil
	}
	c.Send(resp + tag + " OK [READ-ONLY] examined\r\n")
	return f
}

// parseSet parses "1:3,7,9:*" against the largest number max.
func parseSet(s string, max uint32) func(uint32) bool {
	type rng struct{ a, b uint32 }
	var rs []rng
	num := func(x string) uint32 {
		if x == "*" {
			return max
		}
		n, _ := strconv.ParseUint(x, 10, 32)
		return uint32(n)
	}
	for _, part := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(part, ":")
		r := rng{num(a), num(a)}
		if ok {
			r.b = num(b)
		}
		if r.a > r.b {
			r.a, r.b = r.b, r.a
		}
		rs = append(rs, r)
	}
	return func(n uint32) bool {
		for _, r := range rs {
			if n >= r.a && n <= r.b {
				return true
			}
		}
		return false
	}
}

// fetch answers FETCH / UID FETCH; false: the server fell silent.
func (m *Mini) fetch(c *FakeConn, f *MiniFolder, byUID bool, args string, complete func(string)) bool {
	set, items, _ := strings.Cut(args, " ")
	items = strings.ToUpper(items)
	wantBody := strings.Contains(items, "BODY")
	m.mu.Lock()
	msgs := append([]MiniMsg(nil), f.Msgs...)
	var maxNum uint32
	if byUID && len(msgs) > 0 {
		maxNum = msgs[len(msgs)-1].UID
	} else {
		maxNum = uint32(len(msgs))
	}
	in := parseSet(set, maxNum)
	if wantBody && len(m.ExpungeDuring) > 0 {
		kept := f.Msgs[:0]
		var expunged []int
		for i, msg := range f.Msgs {
			if m.ExpungeDuring[msg.UID] {
				expunged = append(expunged, i+1)
				continue
			}
			kept = append(kept, msg)
		}
		f.Msgs = kept
		m.ExpungeDuring = nil
		m.mu.Unlock()
		// Sequence numbers shift down after each EXPUNGE: send highest first.
		sort.Sort(sort.Reverse(sort.IntSlice(expunged)))
		for _, n := range expunged {
			c.Send(fmt.Sprintf("* %d EXPUNGE\r\n", n))
		}
		m.mu.Lock()
		msgs = append([]MiniMsg(nil), f.Msgs...)
	}
	m.mu.Unlock()
	for i, msg := range msgs {
		num := uint32(i + 1)
		if byUID {
			num = msg.UID
		}
		if !in(num) {
			continue
		}
		m.mu.Lock()
		skip := wantBody && (m.NeverDeliver[msg.UID] || (byUID && m.SkipInUIDFetch[msg.UID]))
		stall := wantBody && m.StallAfter > 0 && m.BodiesSent >= m.StallAfter
		if wantBody && !skip && !stall {
			m.BodiesSent++
		}
		m.mu.Unlock()
		if stall {
			return false
		}
		if !wantBody && m.HideInListing[msg.UID] {
			continue
		}
		if skip {
			continue
		}
		c.Send(m.fetchResponse(i+1, msg, items))
	}
	complete("OK done")
	return true
}

func (m *Mini) fetchResponse(seq int, msg MiniMsg, items string) string {
	m.mu.Lock()
	uidAfter, bodyFirst, lie := m.UIDAfterLiteral, m.BodyFirst, m.SizeLie
	extra, announce := m.LiteralExtra, m.AnnounceSize
	m.mu.Unlock()
	uid := fmt.Sprintf("UID %d", msg.UID)
	var meta []string
	if strings.Contains(items, "FLAGS") {
		meta = append(meta, "FLAGS ("+strings.Join(msg.Flags, " ")+")")
	}
	if strings.Contains(items, "INTERNALDATE") {
		meta = append(meta, `INTERNALDATE "`+msg.Date.Format("02-Jan-2006 15:04:05 -0700")+`"`)
	}
	if strings.Contains(items, "RFC822.SIZE") {
		meta = append(meta, fmt.Sprintf("RFC822.SIZE %d", int64(len(msg.Body))+lie))
	}
	var body string
	if strings.Contains(items, "BODY") {
		size := int64(len(msg.Body))
		if announce > 0 {
			size = announce
		}
		body = fmt.Sprintf("BODY[] {%d}\r\n%s%s", size, msg.Body, extra)
	}
	var parts []string
	switch {
	case uidAfter && body != "":
		parts = append(append(parts, meta...), body, uid)
	case bodyFirst && body != "":
		parts = append([]string{uid, body}, meta...)
	default:
		parts = append([]string{uid}, meta...)
		if body != "" {
			parts = append(parts, body)
		}
	}
	return fmt.Sprintf("* %d FETCH (%s)\r\n", seq, strings.Join(parts, " "))
}

func (m *Mini) search(c *FakeConn, tag string, f *MiniFolder, byUID bool, args string, complete func(string)) {
	if f == nil {
		c.Send(tag + " BAD no folder selected\r\n")
		return
	}
	// Only "UID <set>" (optionally after CHARSET/ALL) is understood.
	fields := strings.Fields(args)
	var set string
	for i, w := range fields {
		if strings.EqualFold(w, "UID") && i+1 < len(fields) {
			set = fields[i+1]
		}
	}
	m.mu.Lock()
	msgs := append([]MiniMsg(nil), f.Msgs...)
	m.mu.Unlock()
	var maxUID uint32
	if len(msgs) > 0 {
		maxUID = msgs[len(msgs)-1].UID
	}
	in := func(uint32) bool { return true }
	if set != "" {
		in = parseSet(set, maxUID)
	}
	var out []string
	for i, msg := range msgs {
		if in(msg.UID) {
			if byUID {
				out = append(out, fmt.Sprint(msg.UID))
			} else {
				out = append(out, fmt.Sprint(i+1))
			}
		}
	}
	resp := "* SEARCH"
	if len(out) > 0 {
		resp += " " + strings.Join(out, " ")
	}
	c.Send(resp + "\r\n")
	complete("OK done")
}
