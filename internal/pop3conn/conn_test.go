package pop3conn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/pop3server"
	"github.com/mailark/mailark/internal/testcert"
	"github.com/mailark/mailark/internal/testkit"
)

const testPassword = "s3cr3t-Pa55"

// testServer starts a pop3server with user "alice" and returns it with
// its store and an account pointing at it.
func testServer(t *testing.T, configure func(*pop3server.Server)) (*pop3server.Server, *pop3server.MemStore, *account.Account) {
	t.Helper()
	store := pop3server.NewMemStore()
	srv := &pop3server.Server{Store: store, Users: map[string]string{"alice": testPassword}}
	if configure != nil {
		configure(srv)
	}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, store, accountFor(t, "pop3://alice@"+addr)
}

func accountFor(t *testing.T, url string) *account.Account {
	t.Helper()
	a, err := account.ParseURL(url, account.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Secret = testkit.Secret(testPassword)
	a.Timeout = 5 * time.Second
	return a
}

func dial(t *testing.T, a *account.Account) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), a)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tricky messages: dot lines, a line longer than every buffer, bare LF,
// no final newline, a NUL, 8-bit bytes.
func trickyMessages() [][]byte {
	long := strings.Repeat("x", 200<<10)
	return [][]byte{
		[]byte("From: a@example.org\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.\r\n...\r\nend\r\n"),
		[]byte("Subject: long line\r\n\r\n" + long + "\r\n." + long + "\r\n"),
		[]byte("Subject: bare LF\n\nline one\n.line two\n"),
		[]byte("Subject: no final newline\r\n\r\nlast line"),
		[]byte("Subject: nul \x00 and 8bit \xe9\xff\r\n\r\nbody \x00\r\n"),
		[]byte("Subject: empty body\r\n\r\n"),
	}
}

func retrAll(t *testing.T, c *Conn, entries []Entry) map[int][]byte {
	t.Helper()
	nums := make([]int, len(entries))
	for i, e := range entries {
		nums[i] = e.Num
	}
	got := map[int][]byte{}
	err := c.Retr(context.Background(), nums, func(num int, body io.Reader) error {
		b, err := io.ReadAll(body)
		got[num] = b
		return err
	})
	if err != nil {
		t.Fatalf("Retr: %v", err)
	}
	return got
}

func TestRetrByteExactPipelinedAndNot(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			_, store, a := testServer(t, func(s *pop3server.Server) { s.Hooks.NoPipelining = !pipelining })
			msgs := trickyMessages()
			uidls := map[string][]byte{}
			for _, m := range msgs {
				uidls[store.Add("alice", m)] = m
			}
			c := dial(t, a)
			if c.Pipelining() != pipelining {
				t.Fatalf("Pipelining() = %v, want %v", c.Pipelining(), pipelining)
			}
			entries, err := c.UIDL(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(msgs) {
				t.Fatalf("UIDL listed %d messages, want %d", len(entries), len(msgs))
			}
			got := retrAll(t, c, entries)
			for _, e := range entries {
				want := pop3server.Wire(uidls[e.UIDL])
				if !bytes.Equal(got[e.Num], want) {
					t.Errorf("message %d (%s): got %d bytes, want %d; %.60q", e.Num, e.UIDL, len(got[e.Num]), len(want), got[e.Num])
				}
				if e.Size != int64(len(want)) {
					t.Errorf("message %d: LIST size %d, want %d", e.Num, e.Size, len(want))
				}
			}
			// The session is still in step after streaming.
			if err := c.Noop(context.Background()); err != nil {
				t.Fatalf("NOOP after RETR: %v", err)
			}
			if err := c.Quit(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRetrStopsCleanlyWhenCallbackFails(t *testing.T) {
	_, store, a := testServer(t, nil)
	for i := range 10 {
		store.Add("alice", fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	c := dial(t, a)
	boom := errors.New("disk full")
	seen := 0
	err := c.Retr(context.Background(), []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, func(num int, body io.Reader) error {
		seen++
		if num == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Retr error = %v, want the callback's", err)
	}
	if seen != 3 {
		t.Fatalf("callback ran %d times, want 3", seen)
	}
	// Outstanding replies were drained: the session still works.
	entries, err := c.UIDL(context.Background())
	if err != nil || len(entries) != 10 {
		t.Fatalf("UIDL after aborted RETR: %d entries, %v", len(entries), err)
	}
}

func TestDeleCommitsOnlyAtQuit(t *testing.T) {
	_, store, a := testServer(t, nil)
	for i := range 5 {
		store.Add("alice", fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i))
	}
	c := dial(t, a)
	if err := c.Dele(context.Background(), 1, 2); err != nil {
		t.Fatal(err)
	}
	c.Close() // dropped connection: nothing deleted
	if n := len(store.Messages("alice")); n != 5 {
		t.Fatalf("after DELE without QUIT: %d messages, want 5", n)
	}
	c = dial(t, a)
	if err := c.Dele(context.Background(), 1, 2, 4); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.Messages("alice")); n != 2 {
		t.Fatalf("after DELE+QUIT: %d messages, want 2", n)
	}
	c = dial(t, a)
	err := c.Dele(context.Background(), 1, 7)
	var re *ReplyError
	if !errors.As(err, &re) || !errors.Is(err, mailerr.ErrServer) || re.Command != "DELE 7" {
		t.Fatalf("DELE of a missing message: %v", err)
	}
}

func TestWrongPasswordIsAuthErrorWithoutSecret(t *testing.T) {
	_, _, a := testServer(t, nil)
	a.Secret = testkit.Secret("wrong-password-123")
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "wrong-password-123") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error leaks the password or is not one line: %q", err)
	}
	if !strings.Contains(err.Error(), "test secret") {
		t.Fatalf("error does not say where the password came from: %q", err)
	}
}

func TestTraceRedactsPassword(t *testing.T) {
	_, store, a := testServer(t, nil)
	store.Add("alice", []byte("Subject: t\r\n\r\nhello\r\n"))
	var trace testkit.Buffer
	a.Trace = &trace
	c := dial(t, a)
	entries, err := c.UIDL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	retrAll(t, c, entries)
	c.Quit(context.Background())
	out := trace.String()
	if strings.Contains(out, testPassword) {
		t.Fatalf("trace contains the password:\n%s", out)
	}
	for _, want := range []string{"pop3 C: USER alice", "pop3 C: PASS <redacted>", "pop3 C: RETR 1", "pop3 S: +OK", "bytes of message data", "pop3 C: QUIT"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
}

func TestAPOP(t *testing.T) {
	_, store, a := testServer(t, func(s *pop3server.Server) { s.APOP = true })
	store.Add("alice", []byte("Subject: a\r\n\r\nx\r\n"))
	a.Auth = account.AuthAPOP
	var trace testkit.Buffer
	a.Trace = &trace
	c := dial(t, a)
	if entries, err := c.UIDL(context.Background()); err != nil || len(entries) != 1 {
		t.Fatalf("after APOP: %v %v", entries, err)
	}
	if !strings.Contains(trace.String(), "APOP alice <redacted>") || strings.Contains(trace.String(), "PASS") {
		t.Fatalf("APOP not used or not redacted:\n%s", trace.String())
	}

	a.Secret = testkit.Secret("nope")
	if _, err := Dial(context.Background(), a); !errors.Is(err, mailerr.ErrAuth) {
		t.Fatalf("APOP with a wrong password: %v", err)
	}
}

func TestAPOPNotOfferedIsNotDowngraded(t *testing.T) {
	_, _, a := testServer(t, nil) // no timestamp in the greeting
	a.Auth = account.AuthAPOP
	var trace testkit.Buffer
	a.Trace = &trace
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrAuth) || !strings.Contains(err.Error(), "APOP") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(trace.String(), "PASS") || strings.Contains(trace.String(), "USER") {
		t.Fatalf("fell back to USER/PASS:\n%s", trace.String())
	}
}

func tlsServer(t *testing.T, implicit bool) (*pop3server.MemStore, string, []byte) {
	t.Helper()
	ca, err := testcert.New("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conf := ca.ServerConfig()
	store := pop3server.NewMemStore()
	store.Add("alice", []byte("Subject: tls\r\n\r\nsecret body\r\n"))
	srv := &pop3server.Server{Store: store, Users: map[string]string{"alice": testPassword}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		ln = tls.NewListener(ln, conf)
	} else {
		srv.TLSConfig = conf
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return store, ln.Addr().String(), ca.CAPEM
}

func TestTLS(t *testing.T) {
	for _, mode := range []string{"implicit", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			_, addr, caPEM := tlsServer(t, mode == "implicit")
			caFile := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			a := accountFor(t, "pop3://alice@"+addr+"?tls="+mode)

			// Not trusted without the CA: a TLS error, before any password is sent.
			var trace testkit.Buffer
			a.Trace = &trace
			_, err := Dial(context.Background(), a)
			if !errors.Is(err, mailerr.ErrTLS) || !strings.Contains(err.Error(), "--ca-file") {
				t.Fatalf("untrusted certificate: err = %v", err)
			}
			if strings.Contains(trace.String(), "PASS") {
				t.Fatalf("password sent over an unverified connection:\n%s", trace.String())
			}

			a.CAFile = caFile
			c := dial(t, a)
			entries, err := c.UIDL(context.Background())
			if err != nil || len(entries) != 1 {
				t.Fatalf("UIDL over TLS: %v %v", entries, err)
			}
			got := retrAll(t, c, entries)
			if !bytes.Contains(got[1], []byte("secret body")) {
				t.Fatalf("RETR over TLS: %q", got[1])
			}
		})
	}
}

func TestSTLSRefusedIsTLSError(t *testing.T) {
	_, _, a := testServer(t, nil) // no TLSConfig: no STLS
	a.Security = account.StartTLS
	var trace testkit.Buffer
	a.Trace = &trace
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrTLS) {
		t.Fatalf("err = %v, want ErrTLS", err)
	}
	if strings.Contains(trace.String(), "PASS") {
		t.Fatal("fell back to plaintext login")
	}
}

func TestUnreachableIsNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	a := accountFor(t, "pop3://alice@"+addr)
	_, err = Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrNetwork) || mailerr.ExitCode(err) != mailerr.ExitNetwork {
		t.Fatalf("err = %v, want ErrNetwork", err)
	}
}

func TestInUse(t *testing.T) {
	_, _, a := testServer(t, nil)
	first := dial(t, a)
	defer first.Close()
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrServer) || !strings.Contains(err.Error(), "in use by another POP3 session") {
		t.Fatalf("second session: %v", err)
	}
}

func TestNoUIDL(t *testing.T) {
	_, store, a := testServer(t, func(s *pop3server.Server) { s.Hooks.NoUIDL = true })
	store.Add("alice", []byte("Subject: a\r\n\r\nx\r\n"))
	c := dial(t, a)
	if _, err := c.UIDL(context.Background()); !errors.Is(err, ErrNoUIDL) {
		t.Fatalf("UIDL: %v, want ErrNoUIDL", err)
	}
	entries, err := c.List(context.Background())
	if err != nil || len(entries) != 1 || entries[0].UIDL != "" {
		t.Fatalf("List: %v %v", entries, err)
	}
	if err := c.Noop(context.Background()); err != nil {
		t.Fatalf("session broken after refused UIDL: %v", err)
	}
}

func TestStalledServerTimesOut(t *testing.T) {
	_, store, a := testServer(t, func(s *pop3server.Server) { s.Hooks.StallAfter = 600 })
	store.Add("alice", bytes.Repeat([]byte("stall line\r\n"), 1000))
	a.Timeout = 300 * time.Millisecond
	c := dial(t, a)
	start := time.Now()
	err := c.Retr(context.Background(), []int{1}, func(int, io.Reader) error { return nil })
	if !errors.Is(err, mailerr.ErrNetwork) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if err := c.Noop(context.Background()); err == nil {
		t.Fatal("session still usable after a timeout mid-message")
	}
}

func TestCancelClosesPromptly(t *testing.T) {
	_, store, a := testServer(t, func(s *pop3server.Server) { s.Hooks.StallAfter = 600 })
	store.Add("alice", bytes.Repeat([]byte("stall line\r\n"), 1000))
	a.Timeout = time.Minute
	c := dial(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := c.Retr(ctx, []int{1}, func(int, io.Reader) error { return nil })
	if !errors.Is(err, mailerr.ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

func TestDroppedConnectionIsNetworkError(t *testing.T) {
	_, store, a := testServer(t, func(s *pop3server.Server) {
		s.Hooks.Session = func(n int) int64 { return 2000 }
	})
	store.Add("alice", bytes.Repeat([]byte("drop line\r\n"), 1000))
	c := dial(t, a)
	err := c.Retr(context.Background(), []int{1}, func(_ int, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if !errors.Is(err, mailerr.ErrNetwork) {
		t.Fatalf("err = %v, want ErrNetwork", err)
	}
}

func TestMaxMessageSize(t *testing.T) {
	_, store, a := testServer(t, nil)
	store.Add("alice", bytes.Repeat([]byte("0123456789\r\n"), 1000))
	c := dial(t, a)
	c.MaxMessageSize = 5000
	err := c.Retr(context.Background(), []int{1}, func(_ int, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("err = %v, want ErrTooBig", err)
	}
}

// fakeServer answers each session with a fixed script after the login
// exchange, for replies pop3server would never send.
func fakeServer(t *testing.T, afterLogin string) *account.Account {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				io.WriteString(c, "+OK hi\r\n")
				for _, reply := range []string{"+OK\r\n", "+OK\r\n", "-ERR no CAPA\r\n", afterLogin} {
					if _, err := c.Read(buf); err != nil {
						return
					}
					io.WriteString(c, reply)
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return accountFor(t, "pop3://alice@"+ln.Addr().String())
}

func TestHostileReplies(t *testing.T) {
	cases := []struct {
		name, script string
		op           func(*Conn) error
	}{
		{"endless LIST line", "+OK\r\n1 " + strings.Repeat("9", 100<<10), func(c *Conn) error { _, err := c.List(context.Background()); return err }},
		{"garbage status", "HELLO\r\n", func(c *Conn) error {
			return c.Retr(context.Background(), []int{1}, func(int, io.Reader) error { return nil })
		}},
		{"endless status line", strings.Repeat("+", 100<<10), func(c *Conn) error {
			return c.Retr(context.Background(), []int{1}, func(int, io.Reader) error { return nil })
		}},
		{"message cut short", "+OK\r\nSubject: x\r\n\r\npartial", func(c *Conn) error {
			return c.Retr(context.Background(), []int{1}, func(_ int, b io.Reader) error { _, err := io.Copy(io.Discard, b); return err })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := fakeServer(t, tc.script)
			a.Timeout = time.Second
			c := dial(t, a)
			err := tc.op(c)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, mailerr.ErrServer) && !errors.Is(err, mailerr.ErrNetwork) {
				t.Fatalf("err = %v: not classified", err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestOAuthSASL(t *testing.T) {
	for _, method := range []account.AuthMethod{account.AuthXOAUTH2, account.AuthOAUTHBEARER} {
		t.Run(string(method), func(t *testing.T) {
			_, store, a := testServer(t, nil)
			store.Add("alice", []byte("Subject: o\r\n\r\nx\r\n"))
			a.Auth = method
			var trace testkit.Buffer
			a.Trace = &trace
			c := dial(t, a)
			if entries, err := c.UIDL(context.Background()); err != nil || len(entries) != 1 {
				t.Fatalf("after AUTH %s: %v %v", method, entries, err)
			}
			c.Close()
			if strings.Contains(trace.String(), testPassword) || !strings.Contains(trace.String(), "<redacted>") {
				t.Fatalf("token not redacted:\n%s", trace.String())
			}

			a.Secret = testkit.Secret("expired-token")
			_, err := Dial(context.Background(), a)
			if !errors.Is(err, mailerr.ErrAuth) {
				t.Fatalf("refused token: %v", err)
			}
		})
	}
}

func TestSecretWithLineBreakIsRefused(t *testing.T) {
	_, store, a := testServer(t, nil)
	store.Add("alice", []byte("Subject: keep\r\n\r\nx\r\n"))
	a.Secret = testkit.Secret(testPassword + "\r\nDELE 1\r\nQUIT")
	var trace testkit.Buffer
	a.Trace = &trace
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrUsage) {
		t.Fatalf("err = %v, want a usage error", err)
	}
	if strings.Contains(trace.String(), "PASS") || strings.Contains(trace.String(), "DELE") {
		t.Fatalf("sent something:\n%s", trace.String())
	}
	if len(store.Messages("alice")) != 1 {
		t.Fatal("injected DELE ran")
	}
}
