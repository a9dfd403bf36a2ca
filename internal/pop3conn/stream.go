package pop3conn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Entry is one message of the maildrop.
type Entry struct {
	Num  int    // message number in this session (1..n)
	UIDL string // unique id ("" when the server has no UIDL)
	Size int64  // size from LIST; may differ from the RETR bytes
}

// List returns every message with its LIST size.
func (c *Conn) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := c.withLineMode(ctx, func() error {
		ids, err := c.pc.List(0)
		for _, id := range ids {
			out = append(out, Entry{Num: id.ID, Size: int64(id.Size)})
		}
		return err
	})
	if err != nil {
		return nil, c.classify(ctx, err, "LIST")
	}
	return out, nil
}

// UIDL returns every message with its unique id and LIST size. A server
// without UIDL gives ErrNoUIDL (call List instead).
func (c *Conn) UIDL(ctx context.Context) ([]Entry, error) {
	entries, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	uidls := make(map[int]string, len(entries))
	err = c.withLineMode(ctx, func() error {
		ids, err := c.pc.Uidl(0)
		for _, id := range ids {
			uidls[id.ID] = id.UID
		}
		return err
	})
	if err != nil {
		if c.w.err() == nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w (%s)", ErrNoUIDL, err)
		}
		return nil, c.classify(ctx, err, "UIDL")
	}
	for i := range entries {
		u, ok := uidls[entries[i].Num]
		if !ok {
			return nil, fmt.Errorf("%w (UIDL lists no id for message %d)", ErrNoUIDL, entries[i].Num)
		}
		entries[i].UIDL = u
	}
	return entries, nil
}

// Retr streams messages. fn gets each message's bytes exactly as sent,
// without the dot-stuffing, in the order of nums; whatever fn leaves
// unread is skipped. With PIPELINING a window of RETRs is kept
// outstanding, so the transfer runs at the link's speed rather than one
// round trip per message. An error from fn stops the retrieval (the
// replies already asked for are read and discarded, so the session stays
// usable, e.g. to QUIT).
func (c *Conn) Retr(ctx context.Context, nums []int, fn func(num int, body io.Reader) error) error {
	return c.multiLine(ctx, "RETR", nums, nil, fn)
}

// Top streams the header and the first lines of body lines of each message.
func (c *Conn) Top(ctx context.Context, nums []int, lines int, fn func(num int, body io.Reader) error) error {
	return c.multiLine(ctx, "TOP", nums, []string{strconv.Itoa(lines)}, fn)
}

// Dele marks messages for deletion; the server deletes them at a
// successful Quit. Pipelined like Retr. Every DELE is sent even when some
// are refused; the refusals come back joined (errors.Join), each with
// its *ReplyError.
func (c *Conn) Dele(ctx context.Context, nums ...int) error {
	var refusals []error
	err := c.pipeline(ctx, "DELE", nums, nil, false, func(num int, refused *ReplyError, _ *dotReader) error {
		if refused != nil {
			refusals = append(refusals, c.refusedMessage(refused))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(refusals...)
}

func (c *Conn) multiLine(ctx context.Context, verb string, nums []int, extra []string, fn func(int, io.Reader) error) error {
	return c.pipeline(ctx, verb, nums, extra, true, func(num int, refused *ReplyError, body *dotReader) error {
		if refused != nil {
			return c.refusedMessage(refused)
		}
		return fn(num, body)
	})
}

// pipeline sends "VERB num extra..." for each num, keeping up to the
// window outstanding (one without PIPELINING), and hands each reply in
// order to handle: refused is the server's -ERR, body the multi-line
// data of a +OK when multi is set. When handle returns an error, no new
// command is sent and the outstanding replies are drained.
func (c *Conn) pipeline(ctx context.Context, verb string, nums []int, extra []string, multi bool,
	handle func(num int, refused *ReplyError, body *dotReader) error) error {
	if err := c.usable(); err != nil {
		return err
	}
	if len(nums) == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { c.tcp.Close() })
	defer stop()

	window := 1
	if c.Pipelining() {
		window = c.Window
	}
	// Large reads: a fast server's stream then costs a few system calls
	// per megabyte, not one or more per message.
	br := bufio.NewReaderSize(c.w, 256<<10)
	bw := bufio.NewWriterSize(c.w, 4<<10)
	sent := 0
	send := func(upTo int) error {
		for sent < len(nums) && sent < upTo {
			fmt.Fprintf(bw, "%s %d", verb, nums[sent])
			for _, e := range extra {
				bw.WriteString(" " + e)
			}
			bw.WriteString("\r\n")
			sent++
		}
		return bw.Flush()
	}

	var stopErr error // from handle: stop sending, drain, return it
	for i, num := range nums {
		// The window is topped up once half of it has been answered:
		// commands go out a few dozen per write rather than one per
		// message, and the server never runs dry.
		if stopErr == nil && sent-i <= window/2 {
			if err := send(i + window); err != nil {
				return c.streamFailed(ctx, err, verb, num)
			}
		} else if i >= sent {
			break
		}
		refused, body, err := c.readReply(br, multi, verb, num)
		if err != nil {
			return c.streamFailed(ctx, err, verb, num)
		}
		if stopErr == nil {
			stopErr = handle(num, refused, body)
		}
		if body != nil {
			if _, err := io.Copy(io.Discard, body); err != nil {
				return c.streamFailed(ctx, err, verb, num)
			}
			c.trace.note("[%d bytes of message data]", body.n)
		}
	}
	if br.Buffered() > 0 {
		return c.streamFailed(ctx, protocolError("%d bytes after the last reply", br.Buffered()), verb, 0)
	}
	return stopErr
}

// readReply reads one status line and, for a multi-line +OK, returns
// the reader of its data.
func (c *Conn) readReply(br *bufio.Reader, multi bool, verb string, num int) (*ReplyError, *dotReader, error) {
	cmd := fmt.Sprintf("%s %d", verb, num)
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = protocolError("status line longer than %d bytes", br.Size())
		}
		return nil, nil, err
	}
	status := string(bytes.TrimRight(line, "\r\n"))
	c.trace.note("%s", status)
	switch {
	case status == "+OK" || len(status) > 3 && status[:4] == "+OK ":
		if !multi {
			return nil, nil, nil
		}
		return nil, &dotReader{br: br, atLineStart: true, max: c.MaxMessageSize}, nil
	case status == "-ERR" || len(status) > 4 && status[:5] == "-ERR ":
		text := ""
		if len(status) > 5 {
			text = status[5:]
		}
		return &ReplyError{Command: cmd, Num: num, Text: text}, nil, nil
	}
	return nil, nil, protocolError("reply to %s is neither +OK nor -ERR: %.80q", cmd, status)
}

// streamFailed marks the session broken (the reply stream is out of
// step) and classifies err.
func (c *Conn) streamFailed(ctx context.Context, err error, verb string, num int) error {
	if c.w.err() == nil {
		c.w.fail(err) // a framing error found above the wire
	}
	c.markBroken(err)
	op := verb
	if num > 0 {
		op = fmt.Sprintf("%s %d", verb, num)
	}
	return c.classify(ctx, err, op)
}

// dotReader yields the data of a multi-line reply: lines as sent, the
// byte-stuffed leading dot removed, ending before the "." line. Memory
// stays at the bufio buffer however long the message or its lines.
type dotReader struct {
	br          *bufio.Reader
	atLineStart bool
	pending     []byte // rest of the current line, not yet returned
	done        bool
	n           int64 // bytes returned
	max         int64 // 0: unlimited
	err         error // sticky
}

// ErrTooBig is returned when a message exceeds Conn.MaxMessageSize.
var ErrTooBig = errors.New("pop3: message larger than the size limit")

// Read fills p with as many lines as are already buffered: a consumer
// writing each Read to a file must not pay one write per line.
func (d *dotReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		if d.done {
			return 0, io.EOF
		}
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.nextLine()
	}
	n := 0
	for {
		k := copy(p[n:], d.pending)
		d.pending = d.pending[k:]
		n += k
		if n == len(p) || len(d.pending) > 0 || d.done || d.err != nil || d.br.Buffered() == 0 {
			break
		}
		// The next line is (at least partly) in the buffer already; a
		// line split at the buffer's end merely ends this Read early.
		d.err = d.nextLine()
	}
	d.n += int64(n)
	if d.max > 0 && d.n > d.max {
		d.err = fmt.Errorf("%w (%d bytes)", ErrTooBig, d.max)
		d.pending = nil
		return n, d.err
	}
	return n, nil
}

// nextLine loads the next line (or the next piece of a line longer than
// the buffer) into pending.
func (d *dotReader) nextLine() error {
	line, err := d.br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if d.atLineStart && len(line) > 0 && line[0] == '.' {
		if rest := line[1:]; string(rest) == "\r\n" || string(rest) == "\n" {
			d.done = true
			return nil
		}
		line = line[1:]
	}
	d.atLineStart = err == nil
	d.pending = line
	return nil
}
