// Package pop3server is a small POP3 server (RFC 1939 with the RFC 2449
// CAPA, UIDL, TOP, USER, PIPELINING and RESP-CODES extensions, APOP, and
// STLS when given a certificate) over a Store of maildrops. It serves
// `mailark demo`, which must run with nothing installed, and tests that
// need a server to misbehave on purpose: see Hooks.
package pop3server

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server serves POP3 sessions. Set the fields, then Serve or Start.
type Server struct {
	Store Store
	// Users maps user names to passwords (plain: APOP needs them).
	Users map[string]string
	// TLSConfig, when set, offers STLS.
	TLSConfig *tls.Config
	// APOP puts a timestamp in the greeting and accepts APOP.
	APOP bool
	// Hooks make the server misbehave for tests. Set before Start, or
	// change with SetHooks while it runs.
	Hooks Hooks
	// Logger gets one line per session; nil discards.
	Logger *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]bool
	done     chan struct{}
	wg       sync.WaitGroup
	sessions int
}

// Hooks make a server behave as broken or hostile ones do.
type Hooks struct {
	NoUIDL       bool // UIDL answers -ERR and CAPA omits it
	NoCAPA       bool // CAPA answers -ERR (an RFC 1939-only server)
	NoPipelining bool // CAPA omits PIPELINING (commands are still read in order)
	NoTOP        bool // TOP answers -ERR and CAPA omits it
	// ListSize, when set, replaces the size LIST and STAT report.
	ListSize func(Info) int64
	// DropAfter closes a session's connection once the server has
	// written this many bytes in it (0: never).
	DropAfter int64
	// StallAfter stops a session dead once it has written this many
	// bytes: no more output, no reading, until the client hangs up or
	// the server closes (0: never).
	StallAfter int64
	// QuitFails answers QUIT with -ERR and deletes nothing.
	QuitFails bool
	// Session, when set, is called with the 1-based number of each new
	// session; its return value replaces DropAfter for that session.
	Session func(n int) (dropAfter int64)
}

// SetHooks changes the hooks for sessions that start from now on.
func (s *Server) SetHooks(h Hooks) {
	s.mu.Lock()
	s.Hooks = h
	s.mu.Unlock()
}

func (s *Server) hooks() Hooks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Hooks
}

// Start listens on addr ("127.0.0.1:0") and serves in the background. It
// returns the address actually bound.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	go s.Serve(ln) //nolint:errcheck // ends with Close
	return ln.Addr().String(), nil
}

// Serve accepts sessions until Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	if s.done == nil {
		s.done = make(chan struct{})
	}
	if s.conns == nil {
		s.conns = map[net.Conn]bool{}
	}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
				return err
			}
		}
		s.mu.Lock()
		s.conns[c] = true
		s.sessions++
		n := s.sessions
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c, n)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops listening, ends every session (without committing their
// deletions) and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// session is one client's conversation.
type session struct {
	srv   *Server
	hooks Hooks // as they were when the session began
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	out   *hookWriter

	timestamp string // APOP challenge
	user      string // after USER
	drop      Maildrop
	msgs      []Info
	deleted   map[int]bool
	tls       bool
}

// errQuit ends a session after its reply is written.
var errQuit = errors.New("quit")

func (s *Server) serveConn(c net.Conn, n int) {
	hooks := s.hooks()
	h := &hookWriter{conn: c, dropAfter: hooks.DropAfter, stallAfter: hooks.StallAfter, done: s.done}
	if hooks.Session != nil {
		h.dropAfter = hooks.Session(n)
	}
	ss := &session{srv: s, hooks: hooks, conn: c, r: bufio.NewReaderSize(c, 4096), out: h}
	ss.w = bufio.NewWriterSize(h, 32<<10)
	defer func() {
		if ss.drop != nil {
			ss.drop.Close()
		}
	}()
	greeting := "+OK POP3 server ready"
	if s.APOP {
		host, _ := os.Hostname()
		ss.timestamp = fmt.Sprintf("<%d.%d@%s>", os.Getpid(), time.Now().UnixNano(), host)
		greeting += " " + ss.timestamp
	}
	ss.reply("%s", greeting)
	for {
		if ss.r.Buffered() == 0 {
			// Flush only when the client has sent nothing more: a
			// pipelining client gets its replies in few segments.
			if ss.w.Flush() != nil {
				return
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		line, err := ss.readLine()
		if err != nil {
			return
		}
		if err := ss.command(line); err != nil {
			ss.w.Flush()
			if errors.Is(err, errQuit) {
				return
			}
			s.logger().Debug("pop3 session ended", "err", err)
			return
		}
	}
}

// readLine reads one command line (RFC 2449: at most 255 octets; some
// slack is allowed, an endless line is not).
func (ss *session) readLine() (string, error) {
	var line []byte
	for {
		chunk, err := ss.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > 1024 {
			return "", errors.New("command line too long")
		}
		if err == nil {
			return strings.TrimRight(string(line), "\r\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
}

func (ss *session) reply(format string, args ...any) {
	fmt.Fprintf(ss.w, format, args...)
	ss.w.WriteString("\r\n")
}

func (ss *session) command(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if ss.drop == nil {
		return ss.authorization(verb, arg)
	}
	return ss.transaction(verb, arg)
}

// authorization handles the AUTHORIZATION state.
func (ss *session) authorization(verb, arg string) error {
	srv := ss.srv
	switch verb {
	case "CAPA":
		return ss.capa()
	case "QUIT":
		ss.reply("+OK bye")
		return errQuit
	case "NOOP":
		ss.reply("-ERR [AUTH] log in first")
	case "STLS":
		if srv.TLSConfig == nil || ss.tls {
			ss.reply("-ERR STLS not available")
			return nil
		}
		ss.reply("+OK begin TLS")
		if err := ss.w.Flush(); err != nil {
			return err
		}
		if ss.r.Buffered() > 0 {
			return errors.New("client sent data after STLS") // injection attempt
		}
		tc := tls.Server(ss.conn, srv.TLSConfig)
		if err := tc.Handshake(); err != nil {
			return err
		}
		ss.tls, ss.user = true, ""
		ss.out.conn = tc
		ss.r.Reset(tc)
	case "USER":
		ss.user = arg
		ss.reply("+OK")
	case "PASS":
		want, ok := srv.Users[ss.user]
		if ss.user == "" || !ok || subtle.ConstantTimeCompare([]byte(want), []byte(arg)) != 1 {
			ss.user = ""
			ss.reply("-ERR [AUTH] Authentication failed.")
			return nil
		}
		return ss.login(ss.user)
	case "AUTH":
		return ss.auth(arg)
	case "APOP":
		user, digest, _ := strings.Cut(arg, " ")
		want, ok := srv.Users[user]
		sum := md5.Sum([]byte(ss.timestamp + want))
		if ss.timestamp == "" || !ok || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(digest))) != 1 {
			ss.reply("-ERR [AUTH] Authentication failed.")
			return nil
		}
		return ss.login(user)
	default:
		ss.reply("-ERR unknown command in AUTHORIZATION state")
	}
	return nil
}

// auth runs SASL (RFC 5034) PLAIN, XOAUTH2 or OAUTHBEARER; the token of
// the OAuth mechanisms is checked against the user's password.
func (ss *session) auth(arg string) error {
	mech, ir, hasIR := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "XOAUTH2" && mech != "OAUTHBEARER" {
		ss.reply("-ERR unsupported SASL mechanism")
		return nil
	}
	if !hasIR {
		ss.reply("+ ")
		if err := ss.w.Flush(); err != nil {
			return err
		}
		line, err := ss.readLine()
		if err != nil {
			return err
		}
		ir = line
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		ss.reply("-ERR bad base64")
		return nil
	}
	user, secret := parseSASL(mech, string(raw))
	want, ok := ss.srv.Users[user]
	if user != "" && ok && subtle.ConstantTimeCompare([]byte(want), []byte(secret)) == 1 {
		return ss.login(user)
	}
	if mech != "PLAIN" {
		// RFC 7628: the error comes as a challenge the client answers
		// with an empty line before the final -ERR.
		ss.reply("+ %s", base64.StdEncoding.EncodeToString([]byte(`{"status":"invalid_token"}`)))
		if err := ss.w.Flush(); err != nil {
			return err
		}
		if _, err := ss.readLine(); err != nil {
			return err
		}
	}
	ss.reply("-ERR [AUTH] Authentication failed.")
	return nil
}

// parseSASL returns the user and the password or token of a SASL
// initial response.
func parseSASL(mech, raw string) (user, secret string) {
	switch mech {
	case "PLAIN":
		parts := strings.Split(raw, "\x00")
		if len(parts) == 3 {
			return parts[1], parts[2]
		}
	case "XOAUTH2", "OAUTHBEARER":
		for _, f := range strings.Split(raw, "\x01") {
			switch {
			case strings.HasPrefix(f, "user="):
				user = f[len("user="):]
			case strings.HasPrefix(f, "n,a="):
				user = strings.TrimSuffix(f[len("n,a="):], ",")
			case strings.HasPrefix(f, "auth=Bearer "):
				secret = f[len("auth=Bearer "):]
			}
		}
	}
	return user, secret
}

func (ss *session) login(user string) error {
	drop, err := ss.srv.Store.Open(user)
	if errors.Is(err, ErrInUse) {
		ss.reply("-ERR [IN-USE] Mailbox is locked by another POP3 session.")
		return nil
	}
	if err != nil {
		ss.reply("-ERR [SYS/TEMP] cannot open mailbox")
		return nil
	}
	ss.drop, ss.msgs, ss.deleted = drop, drop.Messages(), map[int]bool{}
	ss.reply("+OK Logged in.")
	return nil
}

func (ss *session) capa() error {
	h := ss.hooks
	if h.NoCAPA {
		ss.reply("-ERR unknown command")
		return nil
	}
	ss.reply("+OK capabilities follow")
	caps := []string{"USER", "RESP-CODES", "AUTH-RESP-CODE", "SASL PLAIN XOAUTH2 OAUTHBEARER"}
	if !h.NoTOP {
		caps = append(caps, "TOP")
	}
	if !h.NoUIDL {
		caps = append(caps, "UIDL")
	}
	if !h.NoPipelining {
		caps = append(caps, "PIPELINING")
	}
	if ss.srv.TLSConfig != nil && !ss.tls && ss.drop == nil {
		caps = append(caps, "STLS")
	}
	for _, c := range caps {
		ss.reply("%s", c)
	}
	ss.reply(".")
	return nil
}

// transaction handles the TRANSACTION state.
func (ss *session) transaction(verb, arg string) error {
	h := ss.hooks
	switch verb {
	case "CAPA":
		return ss.capa()
	case "NOOP":
		ss.reply("+OK")
	case "STAT":
		n, size := 0, int64(0)
		for i, m := range ss.msgs {
			if !ss.deleted[i] {
				n++
				size += ss.listSize(m)
			}
		}
		ss.reply("+OK %d %d", n, size)
	case "LIST":
		return ss.listing(arg, func(i int) string { return strconv.FormatInt(ss.listSize(ss.msgs[i]), 10) })
	case "UIDL":
		if h.NoUIDL {
			ss.reply("-ERR unknown command")
			return nil
		}
		return ss.listing(arg, func(i int) string { return ss.msgs[i].UIDL })
	case "RETR":
		i, ok := ss.msgArg(arg)
		if ok {
			return ss.send(i, -1)
		}
	case "TOP":
		num, lines, _ := strings.Cut(arg, " ")
		n, err := strconv.Atoi(lines)
		if h.NoTOP || err != nil || n < 0 {
			ss.reply("-ERR bad TOP")
			return nil
		}
		if i, ok := ss.msgArg(num); ok {
			return ss.send(i, n)
		}
	case "DELE":
		if i, ok := ss.msgArg(arg); ok {
			ss.deleted[i] = true
			ss.reply("+OK marked")
		}
	case "RSET":
		ss.deleted = map[int]bool{}
		ss.reply("+OK")
	case "QUIT":
		return ss.update()
	default:
		ss.reply("-ERR unknown command")
	}
	return nil
}

// update is the UPDATE state: deletions happen only here.
func (ss *session) update() error {
	if ss.hooks.QuitFails {
		ss.reply("-ERR [SYS/TEMP] could not expunge")
		return errQuit
	}
	var del []int
	for i := range ss.msgs {
		if ss.deleted[i] {
			del = append(del, i)
		}
	}
	if err := ss.drop.Commit(del); err != nil {
		ss.reply("-ERR [SYS/TEMP] could not expunge")
		return errQuit
	}
	ss.reply("+OK bye, %d deleted", len(del))
	return errQuit
}

func (ss *session) listSize(m Info) int64 {
	if ss.hooks.ListSize != nil {
		return ss.hooks.ListSize(m)
	}
	return m.Size
}

// msgArg parses a message number; on failure the -ERR is already sent.
func (ss *session) msgArg(arg string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(arg))
	if err != nil || n < 1 || n > len(ss.msgs) || ss.deleted[n-1] {
		ss.reply("-ERR no such message")
		return 0, false
	}
	return n - 1, true
}

// listing answers LIST/UIDL with or without an argument.
func (ss *session) listing(arg string, value func(i int) string) error {
	if arg != "" {
		if i, ok := ss.msgArg(arg); ok {
			ss.reply("+OK %d %s", i+1, value(i))
		}
		return nil
	}
	ss.reply("+OK")
	for i := range ss.msgs {
		if !ss.deleted[i] {
			ss.reply("%d %s", i+1, value(i))
		}
	}
	ss.reply(".")
	return nil
}

// send writes message i dot-stuffed (RETR, or TOP with lines >= 0).
func (ss *session) send(i, lines int) error {
	rc, err := ss.drop.Open(i)
	if err != nil {
		ss.reply("-ERR [SYS/TEMP] cannot read message")
		return nil
	}
	defer rc.Close()
	ss.reply("+OK %d octets", ss.msgs[i].Size)
	if err := WriteStuffed(ss.w, rc, lines); err != nil {
		return err
	}
	ss.reply(".")
	return nil
}

// WriteStuffed writes a message as a multi-line POP3 reply body without
// the final ".": lines end in CRLF (a bare LF becomes CRLF, a missing
// final line end is added, as Dovecot does), lines starting with "." get
// another. lines >= 0 stops after the header and that many body lines
// (TOP).
func WriteStuffed(w io.Writer, r io.Reader, lines int) error {
	br := bufio.NewReaderSize(r, 32<<10)
	inHeader, bodyLines, atStart := true, 0, true
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			whole := chunk[len(chunk)-1] == '\n'
			if atStart && lines >= 0 && !inHeader && bodyLines >= lines {
				return nil
			}
			if atStart && chunk[0] == '.' {
				if _, werr := w.Write([]byte{'.'}); werr != nil {
					return werr
				}
			}
			content := chunk
			if whole {
				content = bytes.TrimSuffix(bytes.TrimSuffix(chunk, []byte("\n")), []byte("\r"))
			}
			if _, werr := w.Write(content); werr != nil {
				return werr
			}
			if whole || (err != nil && !errors.Is(err, bufio.ErrBufferFull)) {
				if _, werr := w.Write([]byte("\r\n")); werr != nil {
					return werr
				}
				if atStart && len(content) == 0 && inHeader {
					inHeader = false
				} else if !inHeader {
					bodyLines++
				}
			}
			atStart = whole
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Wire returns the bytes a client receives for raw from this server's
// RETR once the dot-stuffing is undone: CRLF line ends throughout.
func Wire(raw []byte) []byte {
	var stuffed, out bytes.Buffer
	WriteStuffed(&stuffed, bytes.NewReader(raw), -1) //nolint:errcheck // in memory
	for _, line := range bytes.SplitAfter(stuffed.Bytes(), []byte("\r\n")) {
		out.Write(bytes.TrimPrefix(line, []byte(".")))
	}
	return out.Bytes()
}

// WireSize is len(Wire(message)), counted without holding the message.
func WireSize(r io.Reader) int64 {
	var c unstuffCounter
	WriteStuffed(&c, r, -1) //nolint:errcheck // the counter never fails
	return c.n
}

// unstuffCounter counts what a client keeps of WriteStuffed output: every
// byte but the stuffed dots. WriteStuffed writes a stuffing dot as a
// write of its own, right at a line start.
type unstuffCounter struct {
	n         int64
	lineStart bool
	started   bool
}

func (c *unstuffCounter) Write(b []byte) (int, error) {
	atStart := c.lineStart || !c.started
	c.started = true
	if atStart && len(b) == 1 && b[0] == '.' {
		c.lineStart = false
		return 1, nil
	}
	c.n += int64(len(b))
	if len(b) > 0 {
		c.lineStart = b[len(b)-1] == '\n'
	}
	return len(b), nil
}

// hookWriter is the session's output: it counts bytes and carries out
// the DropAfter and StallAfter hooks.
type hookWriter struct {
	conn       net.Conn
	written    int64
	dropAfter  int64
	stallAfter int64
	done       <-chan struct{}
}

func (h *hookWriter) Write(b []byte) (int, error) {
	limit, stall := int64(0), false
	if h.dropAfter > 0 {
		limit = h.dropAfter
	}
	if h.stallAfter > 0 && (limit == 0 || h.stallAfter < limit) {
		limit, stall = h.stallAfter, true
	}
	if limit > 0 && h.written+int64(len(b)) > limit {
		n, _ := h.conn.Write(b[:limit-h.written])
		h.written += int64(n)
		if stall {
			h.stallUntilClosed()
		}
		h.conn.Close()
		return n, errors.New("pop3server: connection cut by hook")
	}
	h.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	n, err := h.conn.Write(b)
	h.written += int64(n)
	return n, err
}

// stallUntilClosed waits until the client hangs up or the server closes.
func (h *hookWriter) stallUntilClosed() {
	gone := make(chan struct{})
	go func() {
		var one [1]byte
		h.conn.SetReadDeadline(time.Time{})
		for {
			if _, err := h.conn.Read(one[:]); err != nil {
				close(gone)
				return
			}
		}
	}()
	select {
	case <-gone:
	case <-h.done:
	}
}
