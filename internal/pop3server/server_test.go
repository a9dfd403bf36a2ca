package pop3server

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWireAndWireSize(t *testing.T) {
	cases := map[string]string{
		"crlf":        "A: b\r\n\r\nbody\r\n",
		"bare lf":     "A: b\n\nbody\n.dot\n",
		"no final nl": "A: b\r\n\r\nlast",
		"dots":        ".\r\n..\r\n.x\r\n",
		"empty":       "",
		"long line":   strings.Repeat("y", 70000) + "\n." + strings.Repeat("z", 70000),
	}
	want := map[string]string{
		"crlf":        "A: b\r\n\r\nbody\r\n",
		"bare lf":     "A: b\r\n\r\nbody\r\n.dot\r\n",
		"no final nl": "A: b\r\n\r\nlast\r\n",
		"dots":        ".\r\n..\r\n.x\r\n",
		"empty":       "",
		"long line":   strings.Repeat("y", 70000) + "\r\n." + strings.Repeat("z", 70000) + "\r\n",
	}
	for name, raw := range cases {
		got := Wire([]byte(raw))
		if string(got) != want[name] {
			t.Errorf("%s: Wire = %.80q", name, got)
		}
		if n := WireSize(strings.NewReader(raw)); n != int64(len(want[name])) {
			t.Errorf("%s: WireSize = %d, want %d", name, n, len(want[name]))
		}
	}
}

func TestWriteStuffedTop(t *testing.T) {
	var b bytes.Buffer
	msg := "H: 1\r\nI: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n"
	if err := WriteStuffed(&b, strings.NewReader(msg), 2); err != nil {
		t.Fatal(err)
	}
	if want := "H: 1\r\nI: 2\r\n\r\nl1\r\n..l2\r\n"; b.String() != want {
		t.Fatalf("TOP 2 = %q, want %q", b.String(), want)
	}
	b.Reset()
	WriteStuffed(&b, strings.NewReader(msg), 0)
	if want := "H: 1\r\nI: 2\r\n\r\n"; b.String() != want {
		t.Fatalf("TOP 0 = %q, want %q", b.String(), want)
	}
}

// rawSession drives a server by hand.
type rawSession struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialSession(t *testing.T, addr string) *rawSession {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s := &rawSession{t: t, c: c, r: bufio.NewReader(c)}
	s.line() // greeting
	return s
}

func (s *rawSession) line() string {
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (s *rawSession) cmd(c string) string {
	fmt.Fprintf(s.c, "%s\r\n", c)
	return s.line()
}

func (s *rawSession) multi() []string {
	var out []string
	for l := s.line(); l != "."; l = s.line() {
		out = append(out, l)
	}
	return out
}

func TestMaildirStoreSession(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(dir, "bob", sub), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "bob", "cur", "100.a:2,S"), []byte("Subject: one\n\nx\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "bob", "new", "200.b"), []byte("Subject: two\r\n\r\ny\r\n"), 0o600)
	srv := &Server{Store: &MaildirStore{Dir: dir}, Users: map[string]string{"bob": "pw"}}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	s := dialSession(t, addr)
	if r := s.cmd("USER bob"); r != "+OK" {
		t.Fatal(r)
	}
	if r := s.cmd("PASS wrong"); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Fatal(r)
	}
	s.cmd("USER bob")
	if r := s.cmd("PASS pw"); !strings.HasPrefix(r, "+OK") {
		t.Fatal(r)
	}
	if r := s.cmd("UIDL"); r != "+OK" {
		t.Fatal(r)
	}
	if got := strings.Join(s.multi(), ","); got != "1 100.a,2 200.b" {
		t.Fatalf("UIDL: %s", got)
	}
	s.cmd("LIST")
	if got := strings.Join(s.multi(), ","); got != "1 19,2 19" {
		t.Fatalf("LIST (CRLF sizes): %s", got)
	}
	// Pipelined: both replies come back in order.
	fmt.Fprintf(s.c, "DELE 1\r\nSTAT\r\n")
	if r := s.line(); r != "+OK marked" {
		t.Fatal(r)
	}
	if r := s.line(); r != "+OK 1 19" {
		t.Fatalf("STAT after DELE: %s", r)
	}
	if r := s.cmd("RETR 1"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("RETR of a deleted message: %s", r)
	}
	s.cmd("QUIT")
	if _, err := os.Stat(filepath.Join(dir, "bob", "cur", "100.a:2,S")); !os.IsNotExist(err) {
		t.Fatalf("deleted message still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bob", "new", "200.b")); err != nil {
		t.Fatal(err)
	}
}
