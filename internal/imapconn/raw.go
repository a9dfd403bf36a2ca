package imapconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
)

// RawResponse is the completion of a command sent with RawCommand.
type RawResponse struct {
	Status   string   // "OK", "NO" or "BAD"
	Code     string   // the response code without brackets ("APPENDUID 38505 3955:3957"), "" if none
	Text     string   // the human-readable rest
	Untagged []string // untagged lines the server sent meanwhile (at most rawMaxUntagged)
}

// Err turns a NO or BAD completion into an error; nil for OK.
func (r *RawResponse) Err() error {
	if r.Status == "OK" {
		return nil
	}
	code := ""
	if r.Code != "" {
		code = "[" + r.Code + "] "
	}
	return &RawError{Status: r.Status, Code: r.Code, Text: strings.TrimSpace(code + r.Text)}
}

// RawError is a NO or BAD answer to a raw command.
type RawError struct{ Status, Code, Text string }

func (e *RawError) Error() string { return e.Status + " " + e.Text }

// ErrBusy is returned by RawCommand when the connection has a command in
// flight or another raw command running.
var ErrBusy = errors.New("imapconn: connection busy")

const (
	rawMaxUntagged = 64
	rawTagPrefix   = "M" // imapclient tags are "T<n>": raw tags never collide
)

// rawTags numbers raw commands (per process; only uniqueness matters).
var rawTags atomic.Int64

// RawCommand sends one command that go-imap cannot express — MULTIAPPEND,
// or APPEND with non-synchronising literals of any size — and waits for
// its completion. write receives the stream after "TAG " and must write
// the rest of the command including its final CRLF; literals in it must
// be non-synchronising ("{n+}"), since nobody reads continuation requests.
//
// While it runs the command has the connection to itself: the server's
// answer is taken off the stream before imapclient sees it, and handed
// back to imapclient after the tagged completion. The inactivity timeout,
// the protocol trace and cancellation by ctx apply as for any command.
// The caller must not use c.Client meanwhile, and nothing may be in
// flight on it (ErrBusy otherwise).
//
// If write fails, the command is incomplete on the wire: the connection
// is cut, so the server executes nothing of it, and the error is
// returned.
func (c *Conn) RawCommand(ctx context.Context, write func(w io.Writer) error) (*RawResponse, error) {
	if c.stream == nil || c.Broken() {
		return nil, c.Err(errRawClosed, "sending a command")
	}
	if c.wire.awaiting() {
		return nil, ErrBusy
	}
	tag := fmt.Sprintf("%s%d", rawTagPrefix, rawTags.Add(1))
	d := &rawDivert{tag: tag, done: make(chan struct{})}
	if !c.wire.rawCmd.CompareAndSwap(nil, d) {
		return nil, ErrBusy
	}
	werr := writeRaw(c.stream, tag, write)
	if werr != nil {
		c.wire.fail(fmt.Errorf("raw command %s aborted: %w", tag, werr))
		c.wire.rawCmd.CompareAndSwap(d, nil)
		return nil, werr
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		c.wire.fail(ctx.Err())
	case <-c.Client.Closed():
	}
	c.wire.rawCmd.CompareAndSwap(d, nil)
	d.finish(c.wire.cause()) // no-op when the answer arrived
	if d.err != nil {
		return nil, c.Err(d.err, "waiting for the answer to "+tag)
	}
	return d.resp, nil
}

// errRawClosed stands for "the connection is gone" in RawCommand.
var errRawClosed = errors.New("connection closed")

// writeRaw writes one command through the protocol stream, so the wire
// registers its tag (arming the inactivity timeout) and traces it.
func writeRaw(stream io.Writer, tag string, write func(w io.Writer) error) error {
	if _, err := io.WriteString(stream, tag+" "); err != nil {
		return err
	}
	return write(stream)
}

// rawDivert takes the server's answer to a raw command off the stream.
type rawDivert struct {
	tag    string
	parser streamParser
	done   chan struct{}
	once   sync.Once

	ended bool
	resp  *RawResponse
	lines []string
	err   error
}

// take consumes the bytes of p that belong to the raw command — up to and
// including its tagged completion — and returns the rest.
func (d *rawDivert) take(p []byte) []byte {
	for len(p) > 0 && !d.ended {
		seg := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			seg = p[:i+1]
		}
		d.parser.feed(seg, d.line)
		p = p[len(seg):]
	}
	return p
}

func (d *rawDivert) line(l line) error {
	if l.partial || l.continued {
		return nil
	}
	s := string(l.head)
	if rest, ok := strings.CutPrefix(s, d.tag+" "); ok {
		d.resp = parseCompletion(rest)
		d.resp.Untagged = d.lines
		d.ended = true
		return nil
	}
	if len(d.lines) < rawMaxUntagged {
		d.lines = append(d.lines, s)
	}
	return nil
}

func (d *rawDivert) finish(err error) {
	d.once.Do(func() {
		if d.resp == nil && err == nil {
			err = errors.New("connection closed before the answer")
		}
		d.err = err
		close(d.done)
	})
}

// parseCompletion splits "OK [CODE args] text".
func parseCompletion(s string) *RawResponse {
	status, rest, _ := strings.Cut(s, " ")
	r := &RawResponse{Status: strings.ToUpper(status)}
	if strings.HasPrefix(rest, "[") {
		if i := strings.IndexByte(rest, ']'); i > 0 {
			r.Code, rest = rest[1:i], strings.TrimPrefix(rest[i+1:], " ")
		}
	}
	r.Text = rest
	return r
}

// divert is called by the stream reader (imapclient's reader goroutine,
// in protoConn.Read) with the n bytes just read into b and the read
// error. While a raw command runs, the bytes of its answer are taken out
// of b; divert returns how many bytes remain at the front of b for
// imapclient.
func (w *wire) divert(b []byte, n int, rerr error) int {
	d := w.rawCmd.Load()
	if d == nil {
		return n
	}
	rest := d.take(b[:n])
	if d.ended {
		w.rawCmd.CompareAndSwap(d, nil)
		d.finish(nil)
	} else if rerr != nil {
		w.rawCmd.CompareAndSwap(d, nil)
		d.finish(rerr)
	}
	return copy(b, rest)
}
