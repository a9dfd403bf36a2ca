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

// rawIMAPFetch is the bench's raw limit for IMAP: one connection, LOGIN,
// LIST, then EXAMINE + `UID FETCH 1:* (...)` for every folder sent in one
// write (fully pipelined), the literals either discarded or handed to sink.
// It is deliberately minimal: no flags sync, no state, no error recovery.
func rawIMAPFetch(addr, user, pass string, sink messageSink) (rawResult, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return rawResult{}, err
	}
	defer conn.Close()
	c := &imapReader{r: bufio.NewReaderSize(conn, 256<<10)}
	if _, err := c.line(); err != nil { // greeting
		return rawResult{}, err
	}
	if _, err := fmt.Fprintf(conn, "a LOGIN %s %s\r\n", imapQuote(user), imapQuote(pass)); err != nil {
		return rawResult{}, err
	}
	if _, err := c.untilTagged("a", nil); err != nil {
		return rawResult{}, fmt.Errorf("login: %w", err)
	}
	folders, err := listFolders(conn, c)
	if err != nil {
		return rawResult{}, err
	}
	items := "BODY.PEEK[]"
	if sink != nil {
		items = "FLAGS INTERNALDATE BODY.PEEK[]"
	}
	var cmds bytes.Buffer
	for i, f := range folders {
		fmt.Fprintf(&cmds, "e%d EXAMINE %s\r\nf%d UID FETCH 1:* (%s)\r\n", i, imapQuote(f), i, items)
	}
	if _, err := conn.Write(cmds.Bytes()); err != nil {
		return rawResult{}, err
	}
	var res rawResult
	for i, f := range folders {
		if _, err := c.untilTagged(fmt.Sprintf("e%d", i), nil); err != nil {
			return res, fmt.Errorf("examine %s: %w", f, err)
		}
		if sink != nil {
			if err := sink.BeginFolder(f); err != nil {
				return res, err
			}
		}
		onLiteral := func(r io.Reader, n int64, prefix []byte) error {
			res.Messages++
			res.Bytes += n
			if sink == nil {
				_, err := io.CopyN(io.Discard, r, n)
				return err
			}
			return sink.Message(r, n, prefix)
		}
		if _, err := c.untilTagged(fmt.Sprintf("f%d", i), onLiteral); err != nil {
			return res, fmt.Errorf("fetch %s: %w", f, err)
		}
		if sink != nil {
			if err := sink.EndFolder(); err != nil {
				return res, err
			}
		}
	}
	fmt.Fprintf(conn, "z LOGOUT\r\n")
	return res, nil
}

// listFolders returns the selectable folders of the account.
func listFolders(conn net.Conn, c *imapReader) ([]string, error) {
	if _, err := fmt.Fprintf(conn, "b LIST \"\" \"*\"\r\n"); err != nil {
		return nil, err
	}
	lines, err := c.untilTagged("b", nil)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var folders []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "* LIST ") {
			continue
		}
		attrs, rest, ok := strings.Cut(strings.TrimPrefix(l, "* LIST ("), ") ")
		if !ok {
			return nil, fmt.Errorf("list: cannot parse %q", l)
		}
		if strings.Contains(attrs, `\Noselect`) || strings.Contains(attrs, `\NonExistent`) {
			continue
		}
		_, name, _ := strings.Cut(rest, " ") // skip the delimiter
		folders = append(folders, imapUnquote(name))
	}
	return folders, nil
}

// imapReader reads server responses, handing literals to a callback so
// they stream instead of being buffered.
type imapReader struct {
	r *bufio.Reader
}

func (c *imapReader) line() (string, error) {
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// literalFunc consumes exactly n bytes of a literal from r. prefix is the
// response text before the literal (for a FETCH: "* 3 FETCH (UID 9
// FLAGS (\Seen) INTERNALDATE "..." BODY[] {n}").
type literalFunc func(r io.Reader, n int64, prefix []byte) error

// untilTagged reads responses until the tagged one for tag, returning the
// untagged lines (without literals). A literal goes to onLiteral, or is
// read into the line when onLiteral is nil (small ones only: LIST names).
func (c *imapReader) untilTagged(tag string, onLiteral literalFunc) ([]string, error) {
	var lines []string
	var cur []byte
	for {
		part, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			cur = append(cur, part...)
			continue
		}
		if err != nil {
			return lines, err
		}
		cur = append(cur, part...)
		if n, ok := literalSize(cur); ok {
			if onLiteral == nil {
				buf := make([]byte, n)
				if _, err := io.ReadFull(c.r, buf); err != nil {
					return lines, err
				}
				cur = append(cur, buf...)
				continue
			}
			if err := onLiteral(c.r, n, cur); err != nil {
				return lines, err
			}
			cur = cur[:0]
			continue
		}
		l := strings.TrimRight(string(cur), "\r\n")
		cur = cur[:0]
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return lines, fmt.Errorf("server: %s", l)
			}
			return lines, nil
		}
		if !strings.HasPrefix(l, ")") { // the tail of a FETCH after its literal
			lines = append(lines, l)
		}
	}
}

// literalSize reports whether line ends with a literal announcement {n}.
func literalSize(line []byte) (int64, bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSuffix(l[open+1:len(l)-1], []byte("+"))), 10, 64)
	return n, err == nil
}

func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func imapUnquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(s[1 : len(s)-1])
	}
	return s
}

// fetchMeta pulls FLAGS and INTERNALDATE out of a FETCH response prefix.
func fetchMeta(prefix []byte) (flags []string, date time.Time) {
	p := string(prefix)
	if i := strings.Index(p, "FLAGS ("); i >= 0 {
		if j := strings.IndexByte(p[i+7:], ')'); j >= 0 {
			flags = strings.Fields(p[i+7 : i+7+j])
		}
	}
	if i := strings.Index(p, `INTERNALDATE "`); i >= 0 {
		if j := strings.IndexByte(p[i+14:], '"'); j >= 0 {
			date, _ = time.Parse("_2-Jan-2006 15:04:05 -0700", p[i+14:i+14+j])
		}
	}
	return flags, date
}

// rawResult is what a raw client reports back to the bench (as JSON).
type rawResult struct {
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
}
