package imapconn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what a server may send outside message literals. go-imap's
// decoder keeps a whole response line in memory, so an endless line from a
// broken or hostile server would grow without bound; literals are streamed
// and only need a sanity cap.
const (
	maxServerLine    = 1 << 20 // bytes of one response line, literals excluded
	maxServerLiteral = 2 << 30 // bytes of one literal (a 2 GiB message)
)

// errTimeout is the sticky cause recorded when the server owed an answer
// and sent nothing for the whole inactivity timeout.
var errTimeout = errors.New("no answer")

// ProtocolError is a server breaking the protocol in a way that makes
// mailark cut the connection (a limit exceeded, a reply that cannot be
// trusted).
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

// wire is the shared state of one connection's byte streams.
//
// It solves two problems of imapclient (beta.8): Wait() has no timeout
// while waiting for a response to start, and its own fixed deadlines (30 s
// per response, 5 min per literal) either hang forever or cut a slow but
// progressing transfer. Instead, wire watches the protocol itself: it
// parses the client's command lines and the server's tagged replies (both
// cheap: it only looks at line starts and literal sizes) and knows at any
// moment whether the server owes an answer. While it does, every read has
// an inactivity deadline; while it does not (an idle connection between
// folders), reads wait without one. So a silent server fails after exactly
// one timeout, an idle connection never does, and a 50 MB literal
// trickling in at any speed that keeps bytes flowing is never cut.
//
// The same parse feeds the protocol trace with its redaction, and enforces
// the line and literal limits above.
type wire struct {
	raw     net.Conn
	timeout time.Duration
	// in reads ahead of the raw connection: a message body arrives in a
	// few large reads instead of one or more per message (imapclient's
	// own buffer is 4 KiB, and reads of a literal's end stop at it).
	in *bufio.Reader

	mu      sync.Mutex
	owed    map[string]struct{} // command tags (and pseudo waits) the server must still answer
	failure error               // first reason the connection was cut; sticky

	client, server streamParser
	trace          *tracer // nil: no trace

	// rawCmd is the command sent with Conn.RawCommand whose answer is
	// being taken off the stream, nil when imapclient reads it all.
	rawCmd atomic.Pointer[rawDivert]
	// listFix rewrites bad folder names while Conn.ListStatus runs
	// (listfix.go); nil otherwise.
	listFix atomic.Pointer[listFixer]
}

func newWire(raw net.Conn, timeout time.Duration, trace *tracer) *wire {
	w := &wire{raw: raw, timeout: timeout, owed: map[string]struct{}{}, trace: trace}
	w.in = bufio.NewReaderSize(deadlineReader{w}, readAhead)
	return w
}

// readAhead is the size of a connection's read buffer: big enough that a
// fast server's stream comes in a few system calls per megabyte.
const readAhead = 256 << 10

// expect registers something the server must answer (a command tag, or a
// pseudo wait such as the greeting or the TLS handshake) and arms the read
// deadline if the connection was idle. It takes effect on a Read already
// blocked in another goroutine.
func (w *wire) expect(tag string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.owed) == 0 {
		w.raw.SetReadDeadline(time.Now().Add(w.timeout))
	}
	w.owed[tag] = struct{}{}
}

// answered removes tag from what the server owes.
func (w *wire) answered(tag string) {
	w.mu.Lock()
	delete(w.owed, tag)
	w.mu.Unlock()
}

// owes reports whether tag is awaited.
func (w *wire) owes(tag string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.owed[tag]
	return ok
}

// armRead sets the read deadline for the next read: the inactivity
// timeout while an answer is owed, none otherwise. It reports whether an
// answer is owed.
func (w *wire) armRead() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.owed) > 0 {
		w.raw.SetReadDeadline(time.Now().Add(w.timeout))
		return true
	}
	w.raw.SetReadDeadline(time.Time{})
	return false
}

func (w *wire) awaiting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.owed) > 0
}

// fail records why the connection is being cut (the first reason wins)
// and closes it, which makes every pending imapclient command return.
func (w *wire) fail(err error) error {
	w.mu.Lock()
	if w.failure == nil {
		w.failure = err
	}
	err = w.failure
	w.mu.Unlock()
	w.raw.Close()
	return err
}

// cause is the recorded reason the connection was cut, or nil.
func (w *wire) cause() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failure
}

// rawConn is the TCP connection with the deadlines of wire applied and
// its reads buffered. It sits under TLS.
type rawConn struct {
	net.Conn
	w *wire
}

func (c rawConn) Read(b []byte) (int, error) {
	if err := c.w.cause(); err != nil {
		return 0, err
	}
	return c.w.in.Read(b)
}

// deadlineReader reads the TCP connection with the inactivity deadline
// armed whenever the server owes an answer.
type deadlineReader struct{ w *wire }

func (c deadlineReader) Read(b []byte) (int, error) {
	for {
		if err := c.w.cause(); err != nil {
			return 0, err
		}
		c.w.armRead()
		n, err := c.w.raw.Read(b)
		if n > 0 || err == nil {
			return n, err
		}
		if isTimeout(err) {
			if !c.w.awaiting() {
				continue // idle: nothing is owed, keep listening
			}
			return 0, c.w.fail(errTimeout)
		}
		return 0, err
	}
}

func (c rawConn) Write(b []byte) (int, error) {
	if err := c.w.cause(); err != nil {
		return 0, err
	}
	c.Conn.SetWriteDeadline(time.Now().Add(c.w.timeout))
	n, err := c.Conn.Write(b)
	if err != nil && isTimeout(err) {
		return n, c.w.fail(errTimeout)
	}
	return n, err
}

// protoConn is the plaintext IMAP stream (above TLS) that imapclient
// reads and writes. It feeds both directions to the parsers and ignores
// imapclient's own deadlines, which wire replaces.
type protoConn struct {
	net.Conn
	w *wire
}

func (c protoConn) Read(b []byte) (int, error) {
	for {
		// While a LIST runs, bad folder names are rewritten (listfix.go).
		// The fixer is looked up after the read returns: imapclient's
		// reader is usually blocked in a read when the LIST is sent.
		if f := c.w.listFix.Load(); f != nil {
			n, done := f.take(b)
			if done {
				c.w.listFix.CompareAndSwap(f, nil)
			}
			if n > 0 {
				return n, nil
			}
		}
		m, err := c.readStream(b)
		f := c.w.listFix.Load()
		if f == nil || m == 0 {
			return m, err
		}
		f.feed(b[:m])
		if err != nil {
			if n, _ := f.take(b); n > 0 {
				return n, nil
			}
			return 0, err
		}
	}
}

func (c protoConn) readStream(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if n > 0 {
			if perr := c.w.serverBytes(b[:n]); perr != nil {
				return 0, c.w.fail(perr)
			}
		}
		// The answer to a raw command is not for imapclient (raw.go).
		if m := c.w.divert(b, n, err); m > 0 || err != nil || n == 0 {
			return m, err
		}
	}
}

func (c protoConn) Write(b []byte) (int, error) {
	// Parse first, so a command is registered as owed (and the read
	// deadline armed) before the server can possibly answer it.
	c.w.clientBytes(b)
	return c.Conn.Write(b)
}

func (protoConn) SetDeadline(time.Time) error      { return nil }
func (protoConn) SetReadDeadline(time.Time) error  { return nil }
func (protoConn) SetWriteDeadline(time.Time) error { return nil }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// clientBytes parses what the client sends: each new command line
// registers its tag as owed.
func (w *wire) clientBytes(p []byte) {
	w.client.feed(p, func(l line) error {
		if !l.continued {
			if tag, ok := commandTag(l.head); ok {
				w.expect(tag)
				if f := w.listFix.Load(); f != nil {
					f.sawCommand(tag, l.head)
				}
			}
		}
		if w.trace != nil {
			w.trace.client(l)
		}
		return nil
	})
}

// serverBytes parses what the server sends: the first line answers the
// greeting, a tagged line answers its command. It fails on lines and
// literals beyond the limits.
func (w *wire) serverBytes(p []byte) error {
	return w.server.feed(p, func(l line) error {
		if l.length > maxServerLine {
			return &ProtocolError{fmt.Sprintf("the server sent a response line longer than %d bytes", maxServerLine)}
		}
		if l.literal > maxServerLiteral {
			return &ProtocolError{fmt.Sprintf("the server announced a literal of %d bytes", l.literal)}
		}
		if !l.partial && !l.continued {
			w.answered(greetingTag)
			if tag, ok := responseTag(l.head); ok {
				w.answered(tag)
			}
		}
		if w.trace != nil && !l.partial {
			w.trace.server(l)
		}
		return nil
	})
}

// greetingTag is the pseudo tag for the server greeting; handshakeTag for
// a TLS handshake in progress.
const (
	greetingTag  = "<greeting>"
	handshakeTag = "<handshake>"
)

// line is one physical line of the protocol, or the notice that a line
// under way has grown past maxServerLine (partial).
type line struct {
	head      []byte // the first bytes of the line (at most headKeep), without CRLF
	length    int64  // full length of the line so far
	continued bool   // the line continues a command/response after a literal
	litBefore int64  // size of the literal that preceded a continued line
	literal   int64  // size of the literal announced at the end of this line, or 0
	partial   bool   // the line is not complete yet (only reported when too long)
	whole     bool   // head holds the entire line
}

const headKeep = 512

// streamParser splits one direction of the protocol into lines and
// literals. It keeps at most headKeep bytes of a line.
type streamParser struct {
	literal   int64 // literal bytes still to skip
	litSize   int64 // size of the literal being skipped
	afterLit  bool  // the current line follows a literal
	head      []byte
	length    int64
	tail      [16]byte // last bytes of the line, to find a literal marker
	tailLen   int
	overlong  bool // partial notice already sent for this line
	litBefore int64
}

func (s *streamParser) feed(p []byte, emit func(line) error) error {
	for len(p) > 0 {
		if s.literal > 0 {
			n := int64(len(p))
			if n > s.literal {
				n = s.literal
			}
			s.literal -= n
			p = p[n:]
			if s.literal == 0 {
				s.afterLit, s.litBefore = true, s.litSize
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		s.add(chunk)
		if i < 0 {
			if s.length > maxServerLine && !s.overlong {
				s.overlong = true
				if err := emit(line{head: s.head, length: s.length, partial: true}); err != nil {
					return err
				}
			}
			return nil
		}
		p = p[i+1:]
		if err := s.finish(emit); err != nil {
			return err
		}
	}
	return nil
}

func (s *streamParser) add(b []byte) {
	if room := headKeep - len(s.head); room > 0 {
		s.head = append(s.head, b[:min(room, len(b))]...)
	}
	s.length += int64(len(b))
	// Keep the last bytes for the literal marker "{123}" / "{123+}".
	for _, c := range b[max(0, len(b)-len(s.tail)):] {
		if s.tailLen == len(s.tail) {
			copy(s.tail[:], s.tail[1:])
			s.tailLen--
		}
		s.tail[s.tailLen] = c
		s.tailLen++
	}
}

func (s *streamParser) finish(emit func(line) error) error {
	whole := int64(len(s.head)) == s.length
	head := bytes.TrimSuffix(s.head, []byte("\r"))
	tail := bytes.TrimSuffix(s.tail[:s.tailLen], []byte("\r"))
	l := line{
		head:      head,
		whole:     whole,
		length:    s.length,
		continued: s.afterLit,
		litBefore: s.litBefore,
		literal:   literalSize(tail),
	}
	s.head, s.length, s.tailLen, s.overlong = s.head[:0], 0, 0, false
	s.afterLit, s.litBefore = false, 0
	if l.literal > 0 {
		s.literal, s.litSize = l.literal, l.literal
	}
	return emit(l)
}

// literalSize parses a literal marker ("{12}", "{12+}", "{12-}") at the
// end of a line; 0 if there is none. A zero-length literal needs no skip.
func literalSize(tail []byte) int64 {
	if len(tail) < 3 || tail[len(tail)-1] != '}' {
		return 0
	}
	open := bytes.LastIndexByte(tail, '{')
	if open < 0 {
		return 0
	}
	num := bytes.TrimRight(tail[open+1:len(tail)-1], "+-")
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// commandTag is the tag of a client command line ("T12 FETCH ..."): the
// first word, when it is followed by a space. SASL responses (base64, no
// space) and IDLE's DONE have none.
func commandTag(head []byte) (string, bool) {
	sp := bytes.IndexByte(head, ' ')
	if sp <= 0 || head[0] == '+' || head[0] == '*' {
		return "", false
	}
	return string(head[:sp]), true
}

// responseTag is the tag of a tagged server response ("T12 OK ...").
func responseTag(head []byte) (string, bool) {
	if len(head) == 0 || head[0] == '*' || head[0] == '+' {
		return "", false
	}
	sp := bytes.IndexByte(head, ' ')
	if sp <= 0 {
		return "", false
	}
	return string(head[:sp]), true
}

// greetingConn hands imapclient a greeting of our own before the real
// stream: after a STARTTLS done by Dial, the server sends no new greeting,
// but imapclient waits for one.
type greetingConn struct {
	net.Conn
	r io.Reader
}

func newGreetingConn(c net.Conn) net.Conn {
	g := "* OK [mailark] TLS established\r\n"
	return &greetingConn{Conn: c, r: io.MultiReader(bytes.NewReader([]byte(g)), c)}
}

func (c *greetingConn) Read(b []byte) (int, error) { return c.r.Read(b) }
