package fetch

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	pop3 "github.com/knadh/go-pop3"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
	"github.com/mailark/mailark/internal/testkit"
)

// Tests against the real Dovecot pop3d of the test bed.

// dovecotPOP3 starts a test bed with one user holding n seeded messages
// and returns the server, the user and an account for scheme.
func dovecotPOP3(t *testing.T, n int, seed int64) (*testbed.Server, string) {
	t.Helper()
	s := testbed.Start(t)
	user := s.AddUser(t, "popuser")
	if n > 0 {
		s.Import(t, user, testbed.GenMessages(seed, n, testbed.GenOptions{NoMessageIDRate: 0.05}))
	}
	return s, user
}

func dovecotAccount(t *testing.T, s *testbed.Server, scheme, user string) *account.Account {
	t.Helper()
	a, err := account.ParseURL(s.URL(scheme, user), account.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Secret = testkit.Secret(testbed.Password)
	a.CAFile = s.CAFile
	a.Timeout = 30 * time.Second
	return a
}

// dovecotSums reads the maildrop with go-pop3's own RETR (an independent
// client) and returns the multiset of SHA-256 of the bytes POP3 serves.
func dovecotSums(t *testing.T, s *testbed.Server, user string) map[string]int {
	t.Helper()
	sums, _ := dovecotMaildrop(t, s, user)
	return sums
}

// dovecotMaildrop is dovecotSums plus the total size.
func dovecotMaildrop(t *testing.T, s *testbed.Server, user string) (map[string]int, int64) {
	t.Helper()
	c, err := pop3.New(pop3.Opt{Host: s.Host, Port: s.POP3Port, DialTimeout: 10 * time.Second}).NewConn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Auth(user, testbed.Password); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(0)
	if err != nil {
		t.Fatal(err)
	}
	out, total := map[string]int{}, int64(0)
	for _, m := range list {
		b, err := c.RetrRaw(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[popSHA(b.Bytes())]++
		total += int64(b.Len())
	}
	return out, total
}

func TestPOP3DovecotFetch500BothFormats(t *testing.T) {
	s, user := dovecotPOP3(t, 500, 41)
	want := dovecotSums(t, s, user)
	if n := countSums(want); n != 500 {
		t.Fatalf("seeded %d messages", n)
	}
	dirs := map[archive.Format]string{}
	for _, format := range popFormats {
		dirs[format] = t.TempDir()
		t.Run(string(format), func(t *testing.T) {
			a := dovecotAccount(t, s, "pop3s", user)
			dir := dirs[format]
			full := mustPOP3(t, a, format, dir, Options{})
			if full.NewMessages != 500 {
				t.Fatalf("fetched %d of 500", full.NewMessages)
			}
			if got := popArchiveSums(t, format, dir); !popSumsEqual(want, got) {
				t.Fatalf("archive differs from the POP3 bytes: %s", popSumsDiff(want, got))
			}
			res := mustPOP3(t, a, format, dir, Options{})
			if res.NewMessages != 0 {
				t.Fatalf("rerun fetched %d", res.NewMessages)
			}
			t.Logf("%s: 500 messages in %v; rerun fetched 0 in %v", format, full.Duration, res.Duration)
		})
	}
	// 20 new messages arrive: each archive takes exactly those.
	s.Import(t, user, testbed.GenMessages(42, 20, testbed.GenOptions{}))
	want = dovecotSums(t, s, user)
	for _, format := range popFormats {
		t.Run(string(format)+"/20 new", func(t *testing.T) {
			a := dovecotAccount(t, s, "pop3", user) // plaintext on loopback this time
			res := mustPOP3(t, a, format, dirs[format], Options{})
			if res.NewMessages != 20 {
				t.Fatalf("fetched %d, want the 20 new", res.NewMessages)
			}
			if got := popArchiveSums(t, format, dirs[format]); !popSumsEqual(want, got) {
				t.Fatalf("archive: %s", popSumsDiff(want, got))
			}
		})
	}
}

func TestPOP3DovecotNewMessagesAndDelete(t *testing.T) {
	s, user := dovecotPOP3(t, 60, 43)
	a := dovecotAccount(t, s, "pop3s", user)
	dir := t.TempDir()
	mustPOP3(t, a, archive.Maildir, dir, Options{})
	s.Import(t, user, testbed.GenMessages(44, 20, testbed.GenOptions{}))
	want := dovecotSums(t, s, user)

	res := mustPOP3(t, a, archive.Maildir, dir, Options{Delete: true})
	if res.NewMessages != 20 || res.Deleted != 80 {
		t.Fatalf("delete run: new %d deleted %d, want 20 and 80", res.NewMessages, res.Deleted)
	}
	if n, _, _ := s.Status(t, user, "INBOX"); n != 0 {
		t.Fatalf("%d messages left on Dovecot", n)
	}
	if got := popArchiveSums(t, archive.Maildir, dir); !popSumsEqual(want, got) {
		t.Fatalf("archive: %s", popSumsDiff(want, got))
	}
}

func TestPOP3DovecotDeleteOlderThan(t *testing.T) {
	s, user := dovecotPOP3(t, 10, 45)
	a := dovecotAccount(t, s, "pop3", user)
	a.Security = account.StartTLS // STLS on the plain port
	dir := t.TempDir()
	mustPOP3(t, a, archive.Mbox, dir, Options{})
	time.Sleep(2100 * time.Millisecond)
	fresh := testbed.GenMessages(46, 5, testbed.GenOptions{})
	s.Import(t, user, fresh)
	res := mustPOP3(t, a, archive.Mbox, dir, Options{DeleteOlderThan: 2 * time.Second})
	if res.NewMessages != 5 || res.Deleted != 10 {
		t.Fatalf("new %d deleted %d, want 5 and 10", res.NewMessages, res.Deleted)
	}
	left := dovecotSums(t, s, user)
	if countSums(left) != 5 {
		t.Fatalf("%d left on the server, want the 5 fresh ones", countSums(left))
	}
	for _, m := range fresh {
		if left[popSHA(m.Raw)] != 1 {
			t.Fatal("a fresh message was deleted")
		}
	}
}

func TestPOP3DovecotFailures(t *testing.T) {
	s, user := dovecotPOP3(t, 10, 47)
	dir := t.TempDir()
	mustPOP3(t, dovecotAccount(t, s, "pop3s", user), archive.Maildir, dir, Options{})
	s.Import(t, user, testbed.GenMessages(48, 3, testbed.GenOptions{}))
	before := popTreeDigest(t, dir)

	closed := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()
	cases := []struct {
		name string
		edit func(a *account.Account)
		kind error
		code int
		says string
	}{
		{"wrong password", func(a *account.Account) { a.Secret = testkit.Secret("wrong") }, mailerr.ErrAuth, mailerr.ExitAuth, "check the user name and the password"},
		{"untrusted certificate", func(a *account.Account) { a.CAFile = "" }, mailerr.ErrTLS, mailerr.ExitTLS, "not trusted"},
		{"untrusted certificate with STLS", func(a *account.Account) {
			a.CAFile, a.Security, a.Port = "", account.StartTLS, s.POP3Port
		}, mailerr.ErrTLS, mailerr.ExitTLS, "not trusted"},
		{"unreachable", func(a *account.Account) { a.Port = closed }, mailerr.ErrNetwork, mailerr.ExitNetwork, "cannot connect"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := dovecotAccount(t, s, "pop3s", user)
			tc.edit(a)
			_, err := runPOP3(t, a, archive.Maildir, dir, Options{Delete: true})
			if !errors.Is(err, tc.kind) || mailerr.ExitCode(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v (exit %d)", err, mailerr.ExitCode(err))
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), testbed.Password) {
				t.Fatalf("not one clean line: %q", err)
			}
			t.Logf("exit %d: %v", mailerr.ExitCode(err), err)
		})
	}
	if popTreeDigest(t, dir) != before {
		t.Fatal("a failed run changed the archive")
	}
	if n, _, _ := s.Status(t, user, "INBOX"); n != 13 {
		t.Fatalf("server has %d messages, want 13", n)
	}
}

func countSums(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestPOP3DovecotAPOP(t *testing.T) {
	// Dovecot offers APOP (a timestamp in its greeting) once the mechanism
	// is enabled; the test bed's passwords are stored in plain, as APOP needs.
	s := testbed.StartWith(t, testbed.Options{ExtraConfig: "auth_mechanisms = plain login apop\n"})
	user := s.AddUser(t, "apopuser")
	s.Import(t, user, testbed.GenMessages(49, 5, testbed.GenOptions{}))
	a := dovecotAccount(t, s, "pop3", user) // plaintext on loopback: where APOP matters
	a.Auth = account.AuthAPOP
	trace := &popTrace{}
	a.Trace = trace
	res := mustPOP3(t, a, archive.Maildir, t.TempDir(), Options{})
	if res.NewMessages != 5 {
		t.Fatalf("fetched %d", res.NewMessages)
	}
	if trace.count("APOP "+user+" <redacted>") != 1 || trace.count("PASS") != 0 || strings.Contains(trace.String(), testbed.Password) {
		t.Fatalf("APOP not used, or a secret in the trace:\n%s", trace.String())
	}
	a.Secret = testkit.Secret("wrong")
	if _, err := runPOP3(t, a, archive.Maildir, t.TempDir(), Options{}); !errors.Is(err, mailerr.ErrAuth) {
		t.Fatalf("wrong APOP password: %v", err)
	}
}
