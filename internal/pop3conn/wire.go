package pop3conn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// maxLine bounds a protocol line read by go-pop3 (greeting, status lines,
// CAPA, LIST, UIDL). RFC 1939 allows 512 octets; the margin tolerates
// chatty servers, the bound stops a hostile one from growing go-pop3's
// unbounded ReadBytes buffer forever.
const maxLine = 64 << 10

var errLineTooLong = errors.New("pop3: server sent a protocol line longer than 64 KiB")

// wire is the connection under go-pop3's bufio reader and writer. It puts
// an inactivity deadline on every read and write (go-pop3 has none),
// bounds line length while go-pop3 is reading, captures the greeting (for
// APOP, whose timestamp go-pop3 reads and drops), traces the exchange with
// secrets redacted, and remembers the first I/O error so a go-pop3 error
// can be told apart from an "-ERR" answer.
type wire struct {
	net.Conn
	timeout time.Duration

	// lineMode is true while go-pop3 reads a reply: reads are traced and
	// line-length limited. Streaming commands (RETR, TOP, pipelined DELE)
	// switch it off and trace their status lines themselves.
	lineMode  bool
	lineBytes int // bytes since the last LF, in lineMode

	greeting     []byte
	greetingDone bool

	trace *tracer

	mu    sync.Mutex
	ioErr error
}

func (w *wire) Read(b []byte) (int, error) {
	if err := w.Conn.SetReadDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, w.fail(err)
	}
	n, err := w.Conn.Read(b)
	if n > 0 {
		w.observe(b[:n])
		if w.lineMode {
			if i := bytes.LastIndexByte(b[:n], '\n'); i >= 0 {
				w.lineBytes = n - i - 1
			} else {
				w.lineBytes += n
			}
			if w.lineBytes > maxLine {
				return n, w.fail(errLineTooLong)
			}
		}
	}
	if err != nil {
		return n, w.fail(err)
	}
	return n, nil
}

func (w *wire) Write(b []byte) (int, error) {
	if err := w.Conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, w.fail(err)
	}
	w.trace.client(b)
	n, err := w.Conn.Write(b)
	if err != nil {
		return n, w.fail(err)
	}
	return n, nil
}

// observe captures the greeting and traces server lines in lineMode.
func (w *wire) observe(b []byte) {
	if !w.greetingDone {
		line, _, found := bytes.Cut(b, []byte("\n"))
		if len(w.greeting)+len(line) <= maxLine {
			w.greeting = append(w.greeting, line...)
		}
		w.greetingDone = found
	}
	if w.lineMode {
		w.trace.server(b)
	}
}

// fail records the first I/O error.
func (w *wire) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ioErr == nil {
		w.ioErr = err
	}
	return err
}

// err is the first I/O error seen, or nil.
func (w *wire) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ioErr
}

// tracer writes the protocol exchange to a --verbose trace. Client lines
// are redacted (PASS, APOP digest, SASL responses); server lines are
// written as they come while go-pop3 reads them, and streamed message
// bodies appear only as a byte count.
type tracer struct {
	w       io.Writer // nil: no trace
	mu      sync.Mutex
	partial []byte // client bytes not yet ending in LF
	fromSrv []byte // server bytes not yet ending in LF
	sasl    bool   // inside an AUTH exchange: every client line is secret
}

func (t *tracer) enabled() bool { return t != nil && t.w != nil }

func (t *tracer) client(b []byte) {
	if !t.enabled() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			return
		}
		line := bytes.TrimRight(t.partial[:i], "\r")
		fmt.Fprintf(t.w, "pop3 C: %s\n", t.redact(line))
		t.partial = t.partial[i+1:]
	}
}

// redact keeps a command's verb (and the user name of APOP and the
// mechanism of AUTH) and hides everything secret.
func (t *tracer) redact(line []byte) string {
	if t.sasl {
		return "<redacted>"
	}
	fields := bytes.Fields(line)
	if len(fields) == 0 {
		return ""
	}
	verb := string(bytes.ToUpper(fields[0]))
	switch verb {
	case "PASS":
		return "PASS <redacted>"
	case "APOP":
		if len(fields) > 1 {
			return fmt.Sprintf("APOP %s <redacted>", fields[1])
		}
		return "APOP <redacted>"
	case "AUTH":
		if len(fields) > 1 {
			return fmt.Sprintf("AUTH %s <redacted>", fields[1])
		}
		return "AUTH"
	}
	return string(line)
}

func (t *tracer) server(b []byte) {
	if !t.enabled() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fromSrv = append(t.fromSrv, b...)
	for {
		i := bytes.IndexByte(t.fromSrv, '\n')
		if i < 0 {
			if len(t.fromSrv) > maxLine {
				t.fromSrv = t.fromSrv[:0] // the read fails with errLineTooLong
			}
			return
		}
		fmt.Fprintf(t.w, "pop3 S: %s\n", bytes.TrimRight(t.fromSrv[:i], "\r"))
		t.fromSrv = t.fromSrv[i+1:]
	}
}

// note writes a line of the trace that is not a protocol line.
func (t *tracer) note(format string, args ...any) {
	if !t.enabled() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "pop3 S: "+format+"\n", args...)
}

func (t *tracer) setSASL(on bool) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.sasl = on
	t.mu.Unlock()
}
