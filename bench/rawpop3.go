package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// rawPOP3Fetch is the raw POP3 limit: USER/PASS, STAT, then RETR of every
// message written by a separate goroutine while the responses are read, so
// the whole mailbox is one pipelined stream. Bodies are dot-unstuffed and
// handed to sink (or discarded).
func rawPOP3Fetch(addr, user, pass string, sink messageSink) (rawResult, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return rawResult{}, err
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 256<<10)
	if _, err := pop3Status(r); err != nil { // greeting
		return rawResult{}, err
	}
	for _, cmd := range []string{"USER " + user, "PASS " + pass} {
		if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
			return rawResult{}, err
		}
		if _, err := pop3Status(r); err != nil {
			return rawResult{}, fmt.Errorf("login: %w", err)
		}
	}
	fmt.Fprintf(conn, "STAT\r\n")
	stat, err := pop3Status(r)
	if err != nil {
		return rawResult{}, err
	}
	count, err := strconv.Atoi(strings.Fields(stat + " 0")[0])
	if err != nil {
		return rawResult{}, fmt.Errorf("stat: %q", stat)
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- sendRETRs(conn, count) }()

	if sink != nil {
		if err := sink.BeginFolder("INBOX"); err != nil {
			return rawResult{}, err
		}
	}
	var res rawResult
	body := &dotReader{r: r}
	for range count {
		if _, err := pop3Status(r); err != nil {
			return res, fmt.Errorf("retr: %w", err)
		}
		body.reset()
		var n int64
		if sink == nil {
			n, err = io.Copy(io.Discard, body)
		} else {
			// POP3 gives no size up front that matches the unstuffed bytes;
			// the sink gets a reader and a size of -1.
			cr := &countingReader{r: body}
			err = sink.Message(cr, -1, nil)
			n = cr.n
		}
		if err != nil {
			return res, err
		}
		res.Messages++
		res.Bytes += n
	}
	if err := <-sendErr; err != nil {
		return res, err
	}
	if sink != nil {
		if err := sink.EndFolder(); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(conn, "QUIT\r\n")
	return res, nil
}

func sendRETRs(conn net.Conn, count int) error {
	w := bufio.NewWriterSize(conn, 64<<10)
	for i := 1; i <= count; i++ {
		fmt.Fprintf(w, "RETR %d\r\n", i)
	}
	return w.Flush()
}

// pop3Status reads one status line; -ERR becomes an error.
func pop3Status(r *bufio.Reader) (string, error) {
	l, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	l = strings.TrimRight(l, "\r\n")
	if rest, ok := strings.CutPrefix(l, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("server: %s", l)
}

// dotReader yields one multi-line POP3 response body, dot-unstuffed, up to
// (not including) the terminating "." line.
type dotReader struct {
	r    *bufio.Reader
	line []byte
	done bool
	bol  bool // at the beginning of a line
}

func (d *dotReader) reset() { d.line, d.done, d.bol = nil, false, true }

func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.line) == 0 {
			if d.done {
				break
			}
			if n > 0 && d.r.Buffered() == 0 {
				break // return what we have rather than block
			}
			if err := d.next(); err != nil {
				return n, err
			}
			continue
		}
		c := copy(p[n:], d.line)
		d.line = d.line[c:]
		n += c
	}
	if n == 0 && d.done {
		return 0, io.EOF
	}
	return n, nil
}

// next loads the next line, unstuffed, or marks the end of the response.
func (d *dotReader) next() error {
	l, err := d.r.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	if d.bol && len(l) > 0 && l[0] == '.' {
		if bytes.Equal(l, []byte(".\r\n")) || bytes.Equal(l, []byte(".\n")) {
			d.done = true
			return nil
		}
		l = l[1:]
	}
	d.bol = err == nil // a full line ends here
	d.line = l
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
