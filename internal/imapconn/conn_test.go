package imapconn

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testkit"
)

func testAccount(host string, port int, sec account.Security, secret string) *account.Account {
	return &account.Account{
		Protocol: account.IMAP, User: imaptest.User, Host: host, Port: port,
		Security: sec, Auth: account.AuthPassword, Secret: testkit.Secret(secret),
		Timeout: 2 * time.Second,
	}
}

func dialOK(t *testing.T, a *account.Account) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), a)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialPlainLoginAndList(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Sent", "Work/2024", "Entwürfe"},
		Caps: []imap.Cap{imap.CapListExtended, imap.CapListStatus, imap.CapNamespace}})
	c := dialOK(t, testAccount(srv.Host, srv.Port, account.Plain, imaptest.Password))
	if c.Delim != '/' {
		t.Errorf("Delim = %q, want '/'", c.Delim)
	}
	if !c.Caps.Has(imap.CapListStatus) {
		t.Errorf("post-login caps lack LIST-STATUS: %v", c.Caps)
	}
	boxes, err := c.ListStatus(context.Background(), &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Mailbox{}
	for _, m := range boxes {
		got[m.Name] = m
	}
	for _, name := range []string{"INBOX", "Sent", "Work/2024", "Entwürfe"} {
		m, ok := got[name]
		if !ok {
			t.Errorf("folder %q not listed; got %v", name, boxes)
			continue
		}
		if m.Status == nil || m.Status.NumMessages == nil || m.Status.UIDValidity == 0 {
			t.Errorf("folder %q: no LIST-STATUS data: %+v", name, m.Status)
		}
	}
	// The in-memory server has no SPECIAL-USE: names are recognised.
	if got["Sent"].SpecialUse != archive.SpecialSent || got["Entwürfe"].SpecialUse != archive.SpecialDrafts {
		t.Errorf("special use by name: Sent=%q Entwürfe=%q", got["Sent"].SpecialUse, got["Entwürfe"].SpecialUse)
	}
	if got["INBOX"].SpecialUse != "" || got["Work/2024"].SpecialUse != "" {
		t.Errorf("unexpected special use on INBOX/Work")
	}
}

func TestLoginMechanisms(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mechs  []string
		auth   account.AuthMethod
		secret string
		ok     bool
	}{
		{"PLAIN", nil, account.AuthPassword, imaptest.Password, true},
		{"LOGIN only", []string{}, account.AuthPassword, imaptest.Password, true},
		{"PLAIN wrong", nil, account.AuthPassword, "wrong", false},
		{"LOGIN wrong", []string{}, account.AuthPassword, "wrong", false},
		{"XOAUTH2", []string{"XOAUTH2"}, account.AuthXOAUTH2, imaptest.Token, true},
		{"XOAUTH2 wrong", []string{"XOAUTH2"}, account.AuthXOAUTH2, "expired", false},
		{"OAUTHBEARER", []string{"OAUTHBEARER"}, account.AuthOAUTHBEARER, imaptest.Token, true},
		{"OAUTHBEARER wrong", []string{"OAUTHBEARER"}, account.AuthOAUTHBEARER, "expired", false},
		{"XOAUTH2 not offered", nil, account.AuthXOAUTH2, imaptest.Token, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imaptest.Start(t, imaptest.Config{Mechanisms: tc.mechs})
			a := testAccount(srv.Host, srv.Port, account.Plain, tc.secret)
			a.Auth = tc.auth
			trace := &testkit.Buffer{}
			a.Trace = trace
			start := time.Now()
			c, err := Dial(context.Background(), a)
			if tc.ok {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				if err := c.Client.Noop().Wait(); err != nil {
					t.Fatalf("NOOP after login: %v", err)
				}
			} else {
				if err == nil {
					c.Close()
					t.Fatal("login succeeded, want failure")
				}
				if !errors.Is(err, mailerr.ErrAuth) {
					t.Fatalf("error %v is not ErrAuth", err)
				}
				want := "login as alice at 127.0.0.1 refused"
				if tc.name == "XOAUTH2 not offered" {
					want = "does not offer XOAUTH2 login (it offers: PLAIN)"
				}
				if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), want) {
					t.Errorf("error message: %q", err)
				}
				// A failed SASL exchange must not leave a hung connection.
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("failure took %v", d)
				}
			}
			if tc.name != "XOAUTH2 not offered" {
				assertNoSecret(t, trace.String(), tc.secret)
			}
		})
	}
}

// assertNoSecret checks the trace holds neither the secret nor its base64
// forms (a PLAIN or XOAUTH2 blob), and that it did trace the login.
func assertNoSecret(t *testing.T, trace, secret string) {
	t.Helper()
	if !strings.Contains(trace, "<redacted>") {
		t.Errorf("trace shows no redacted login:\n%s", trace)
	}
	forms := []string{secret,
		base64.StdEncoding.EncodeToString([]byte("\x00" + imaptest.User + "\x00" + secret)),
		base64.StdEncoding.EncodeToString([]byte("user=" + imaptest.User + "\x01auth=Bearer " + secret + "\x01\x01")),
	}
	for _, f := range forms {
		if strings.Contains(trace, f) {
			t.Fatalf("trace contains the secret (%q):\n%s", f, trace)
		}
	}
	// base64 fragments of the secret would show up as long runs; check
	// every line after an AUTHENTICATE is redacted.
	for _, l := range strings.Split(trace, "\n") {
		if strings.Contains(l, " C: ") && !strings.Contains(l, " C: T") && !strings.Contains(l, "<redacted>") && !strings.Contains(l, " C: M0") {
			t.Errorf("unredacted client continuation line: %q", l)
		}
	}
}

func TestTraceRedactsLiteralPassword(t *testing.T) {
	// A password with a quote, a backslash and a non-ASCII letter is sent
	// as a literal by LOGIN; the literal must not reach the trace.
	pass := `pa"ss\wörd{3}`
	srv := imaptest.Start(t, imaptest.Config{Mechanisms: []string{}})
	srv.Mem.AddUser(newMemUser(pass))
	a := testAccount(srv.Host, srv.Port, account.Plain, pass)
	a.User = "bob"
	trace := &testkit.Buffer{}
	a.Trace = trace
	c := dialOK(t, a)
	c.Close()
	out := trace.String()
	if strings.Contains(out, "wörd") || strings.Contains(out, `pa"ss`) {
		t.Fatalf("password leaked into the trace:\n%s", out)
	}
	if !strings.Contains(out, "LOGIN <redacted>") {
		t.Errorf("no redacted LOGIN in trace:\n%s", out)
	}
	if !strings.Contains(out, "LOGOUT") {
		t.Errorf("trace stops early (lines after login missing):\n%s", out)
	}
}

func TestTraceElidesBodies(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{})
	body := "Subject: hi\r\n\r\nTOP-SECRET-BODY-TEXT\r\n"
	srv.Append(t, imaptest.Msg{Folder: "INBOX", Raw: []byte(body), Date: time.Now()})
	a := testAccount(srv.Host, srv.Port, account.Plain, imaptest.Password)
	trace := &testkit.Buffer{}
	a.Trace = trace
	c := dialOK(t, a)
	if _, err := c.Client.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Client.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %d", err, len(msgs))
	}
	out := trace.String()
	if strings.Contains(out, "TOP-SECRET") {
		t.Fatalf("message body in trace:\n%s", out)
	}
	if !strings.Contains(out, "<"+itoa(len(body))+" bytes>") {
		t.Errorf("trace lacks the elided literal size:\n%s", out)
	}
}

func TestTLSModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode imaptest.Mode
		sec  account.Security
	}{
		{"implicit", imaptest.ImplicitTLS, account.ImplicitTLS},
		{"starttls", imaptest.StartTLS, account.StartTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imaptest.Start(t, imaptest.Config{Mode: tc.mode})
			a := testAccount(srv.Host, srv.Port, tc.sec, imaptest.Password)

			// Without the CA: not trusted.
			_, err := Dial(context.Background(), a)
			if !errors.Is(err, mailerr.ErrTLS) {
				t.Fatalf("untrusted certificate: got %v, want ErrTLS", err)
			}
			if !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "--ca-file") {
				t.Errorf("message: %q", err)
			}

			// With it: works, and the session is usable.
			a.CAFile = srv.CAFile
			trace := &testkit.Buffer{}
			a.Trace = trace
			c := dialOK(t, a)
			if err := c.Client.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(trace.String(), "TLS 1.3 established") {
				t.Errorf("trace does not show the TLS session:\n%s", trace)
			}
			assertNoSecret(t, trace.String(), imaptest.Password)
		})
	}
}

func TestWrongHostName(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{Mode: imaptest.ImplicitTLS, CertHosts: []string{"mail.example.org"}})
	a := testAccount(srv.Host, srv.Port, account.ImplicitTLS, imaptest.Password)
	a.CAFile = srv.CAFile
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrTLS) || !strings.Contains(err.Error(), "it is for mail.example.org") {
		t.Fatalf("got %v, want ErrTLS naming the certificate's host", err)
	}
}

func TestPlainToTLSPortAndBack(t *testing.T) {
	// imaps:// against a plaintext server: a clear TLS error, quickly.
	srv := imaptest.Start(t, imaptest.Config{})
	a := testAccount(srv.Host, srv.Port, account.ImplicitTLS, imaptest.Password)
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrTLS) && !errors.Is(err, mailerr.ErrNetwork) {
		t.Fatalf("got %v", err)
	}
	// STARTTLS against a server without it.
	a.Security = account.StartTLS
	_, err = Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrTLS) || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("STARTTLS refused: got %v", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = Dial(context.Background(), testAccount("127.0.0.1", port, account.Plain, "x"))
	if !errors.Is(err, mailerr.ErrNetwork) {
		t.Fatalf("got %v, want ErrNetwork", err)
	}
	want := "cannot reach 127.0.0.1:" + itoa(port)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "check host and port") {
		t.Errorf("message %q lacks %q", err, want)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	// Greets, lets us log in, then never answers again.
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		if _, _, _, err := c.Login(""); err != nil {
			return
		}
		c.Hang() // silence
	})
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	a.Timeout = 300 * time.Millisecond
	c := dialOK(t, a)
	start := time.Now()
	err := c.Client.Noop().Wait()
	d := time.Since(start)
	if err == nil {
		t.Fatal("NOOP to a silent server succeeded")
	}
	if d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("timed out after %v, want about 300ms", d)
	}
	kerr := c.Err(err, "sending NOOP")
	if !errors.Is(kerr, mailerr.ErrNetwork) || !strings.Contains(kerr.Error(), "sent nothing for 300ms") {
		t.Errorf("classified as %v", kerr)
	}
}

func TestSilentGreetingTimesOut(t *testing.T) {
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) { c.Hang() })
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	a.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrNetwork) {
		t.Fatalf("got %v, want ErrNetwork", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// The same for STARTTLS and implicit TLS (handshake never answered).
	for _, sec := range []account.Security{account.StartTLS, account.ImplicitTLS} {
		a.Security = sec
		start = time.Now()
		_, err = Dial(context.Background(), a)
		if !errors.Is(err, mailerr.ErrNetwork) {
			t.Fatalf("%v: got %v, want ErrNetwork", sec, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%v: took %v", sec, d)
		}
	}
}

func TestIdleConnectionSurvives(t *testing.T) {
	// Nothing owed, nothing sent: an idle connection outlives the timeout.
	srv := imaptest.Start(t, imaptest.Config{})
	a := testAccount(srv.Host, srv.Port, account.Plain, imaptest.Password)
	a.Timeout = 200 * time.Millisecond
	c := dialOK(t, a)
	time.Sleep(700 * time.Millisecond)
	if err := c.Client.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after idling: %v", err)
	}
}

func TestSlowButSteadyLiteralIsNotCut(t *testing.T) {
	// A literal trickling in for longer than the timeout, never pausing
	// as long as the timeout, must come through.
	body := strings.Repeat("x", 40)
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		tag, _, _, err := c.Login("")
		if err != nil {
			return
		}
		c.Send("* 1 FETCH (BODY[] {" + itoa(len(body)) + "}\r\n")
		for i := 0; i < len(body); i++ {
			c.Send(body[i : i+1])
			time.Sleep(25 * time.Millisecond) // 1 s in all, timeout 300 ms
		}
		c.Send(")\r\n" + tag + " OK done\r\n")
		c.Command()
	})
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	a.Timeout = 300 * time.Millisecond
	c := dialOK(t, a)
	msgs, err := c.Client.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 || len(msgs[0].BodySection) != 1 || string(msgs[0].BodySection[0].Bytes) != body {
		t.Fatalf("got %+v", msgs)
	}
}

func TestEndlessLineIsCut(t *testing.T) {
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		if _, _, _, err := c.Login(""); err != nil {
			return
		}
		c.Send("* OK ")
		chunk := strings.Repeat("A", 64<<10)
		for i := 0; i < 64; i++ { // 4 MiB without a line end
			if c.Send(chunk) != nil {
				return
			}
		}
	})
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	c := dialOK(t, a)
	err := c.Client.Noop().Wait()
	if err == nil {
		t.Fatal("endless line accepted")
	}
	kerr := c.Err(err, "sending NOOP")
	if !errors.Is(kerr, mailerr.ErrServer) || !strings.Contains(kerr.Error(), "longer than") {
		t.Fatalf("got %v", kerr)
	}
}

func TestStartTLSInjectionRefused(t *testing.T) {
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		c.Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")
		tag, _, _, err := c.Command()
		if err != nil {
			return
		}
		// An attacker appends a response to the plaintext OK.
		c.Send(tag + " OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n")
		c.Hang()
	})
	a := testAccount(fake.Host, fake.Port, account.StartTLS, "x")
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrTLS) || !strings.Contains(err.Error(), "after its STARTTLS answer") {
		t.Fatalf("got %v", err)
	}
}

func TestCancelClosesConnection(t *testing.T) {
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		if _, _, _, err := c.Login(""); err != nil {
			return
		}
		c.Hang()
	})
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	a.Timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Dial(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err = c.Client.Noop().Wait()
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("NOOP after cancel: %v after %v", err, time.Since(start))
	}
	if kerr := c.Err(err, "sending NOOP"); !errors.Is(kerr, mailerr.ErrInterrupted) {
		t.Errorf("got %v, want ErrInterrupted", kerr)
	}
}

func TestCloseLogsOutQuicklyFromStuckServer(t *testing.T) {
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		if _, _, _, err := c.Login(""); err != nil {
			return
		}
		c.Hang() // never answers LOGOUT
	})
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	a.Timeout = time.Minute
	c := dialOK(t, a)
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v; it should not wait for the answer to LOGOUT", d)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func newMemUser(pass string) *imapmemserver.User {
	u := imapmemserver.NewUser("bob", pass)
	u.Create("INBOX", nil)
	return u
}

func TestCapabilityNeverAnswered(t *testing.T) {
	// A greeting without capabilities makes imapclient ask CAPABILITY,
	// and its Caps() would wait 30 s for an answer that never comes.
	fake := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		c.Send("* OK hello\r\n")
		c.Hang()
	})
	a := testAccount(fake.Host, fake.Port, account.Plain, "x")
	a.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), a)
	if !errors.Is(err, mailerr.ErrNetwork) || !strings.Contains(err.Error(), "capabilities") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
