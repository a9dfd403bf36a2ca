package imaptest

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Fake is a scripted IMAP server: each accepted connection runs the
// handler in its own goroutine. It serves the misbehaviour real servers
// show only sometimes (silence, data after a literal, endless lines).
type Fake struct {
	Addr string
	Host string
	Port int

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// FakeConn is one client connection to a Fake server.
type FakeConn struct {
	net.Conn
	R *bufio.Reader
}

// StartFake listens on a free loopback port until the test ends.
func StartFake(t testing.TB, handler func(c *FakeConn)) *Fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{ln: ln, Addr: ln.Addr().String(), Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				handler(&FakeConn{Conn: c, R: bufio.NewReader(c)})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// Send writes raw protocol text (add "\r\n" yourself).
func (c *FakeConn) Send(s string) error {
	_, err := c.Write([]byte(s))
	return err
}

// Command reads one command line and returns its tag, the upper-case
// command name (with "UID " joined for UID commands) and the full line.
// Literals the client sends ({n} or {n+}) are read and put into the line
// as quoted strings, with a continuation request for synchronising ones.
func (c *FakeConn) Command() (tag, name, line string, err error) {
	var b strings.Builder
	for {
		l, err := c.R.ReadString('\n')
		if err != nil {
			return "", "", "", err
		}
		l = strings.TrimRight(l, "\r\n")
		n, sync := literalAtEnd(l)
		if n < 0 {
			b.WriteString(l)
			break
		}
		b.WriteString(l[:strings.LastIndexByte(l, '{')])
		if sync {
			c.Send("+ go ahead\r\n")
		}
		buf := make([]byte, n)
		if _, err := ioReadFull(c.R, buf); err != nil {
			return "", "", "", err
		}
		// The literal goes into the line as a quoted string, so
		// handlers parse one syntax.
		b.WriteString(`"` + strings.ReplaceAll(strings.ReplaceAll(string(buf), `\`, `\\`), `"`, `\"`) + `"`)
	}
	line = b.String()
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", "", line, nil
	}
	tag, name = f[0], strings.ToUpper(f[1])
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(f[2])
	}
	return tag, name, line, nil
}

// Login answers the greeting-to-login part of a session: greeting,
// CAPABILITY, and a LOGIN or AUTHENTICATE that always succeeds. It
// returns the first command after login.
func (c *FakeConn) Login(caps string) (tag, name, line string, err error) {
	caps = strings.TrimSpace("IMAP4rev1 " + caps)
	c.Send("* OK [CAPABILITY " + caps + "] fake ready\r\n")
	for {
		tag, name, line, err = c.Command()
		if err != nil {
			return
		}
		switch name {
		case "CAPABILITY":
			c.Send("* CAPABILITY " + caps + "\r\n" + tag + " OK done\r\n")
		case "LOGIN":
			c.Send(tag + " OK [CAPABILITY " + caps + "] logged in\r\n")
		case "AUTHENTICATE":
			c.Send(tag + " OK [CAPABILITY " + caps + "] logged in\r\n")
		case "LIST":
			if strings.HasSuffix(line, `"" ""`) {
				c.Send(`* LIST (\Noselect) "/" ""` + "\r\n" + tag + " OK done\r\n")
				continue
			}
			return
		default:
			return
		}
	}
}

// Hang reads and ignores everything until the client goes away or the
// server stops: a server that has fallen silent.
func (c *FakeConn) Hang() {
	io.Copy(io.Discard, c.R)
}

func literalAtEnd(l string) (int, bool) {
	if !strings.HasSuffix(l, "}") {
		return -1, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return -1, false
	}
	num := l[i+1 : len(l)-1]
	sync := true
	if strings.HasSuffix(num, "+") || strings.HasSuffix(num, "-") {
		num, sync = num[:len(num)-1], false
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return -1, false
	}
	return n, sync
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
