package account

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailark/mailark/internal/mailerr"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		raw      string
		proto    Protocol
		sec      Security
		host     string
		port     int
		auth     AuthMethod
		plainOK  bool
		wantErr  string
		wantUser string
	}{
		{raw: "imaps://me@mail.example.org", proto: IMAP, sec: ImplicitTLS, host: "mail.example.org", port: 993, wantUser: "me"},
		{raw: "imap://me@mail.example.org", proto: IMAP, sec: StartTLS, host: "mail.example.org", port: 143, wantUser: "me"},
		{raw: "pop3s://me@pop.example.org:1995", proto: POP3, sec: ImplicitTLS, host: "pop.example.org", port: 1995, wantUser: "me"},
		{raw: "pop3://me@pop.example.org", proto: POP3, sec: StartTLS, host: "pop.example.org", port: 110, wantUser: "me"},
		{raw: "imap://me@127.0.0.1:1143", proto: IMAP, sec: Plain, host: "127.0.0.1", port: 1143, wantUser: "me"},
		{raw: "imap://me@[::1]:1143", proto: IMAP, sec: Plain, host: "::1", port: 1143, wantUser: "me"},
		{raw: "imap://me@localhost?tls=starttls", proto: IMAP, sec: StartTLS, host: "localhost", port: 143, wantUser: "me"},
		{raw: "imap://me%40example.org@mail.example.org", proto: IMAP, sec: StartTLS, host: "mail.example.org", port: 143, wantUser: "me@example.org"},
		{raw: "imaps://me@outlook.office365.com?auth=xoauth2", proto: IMAP, sec: ImplicitTLS, host: "outlook.office365.com", port: 993, auth: AuthXOAUTH2, wantUser: "me"},
		{raw: "imap://me@mail.example.org?tls=none", plainOK: true, proto: IMAP, sec: Plain, host: "mail.example.org", port: 143, wantUser: "me"},
		{raw: "pop3://me@pop.example.org?auth=apop", proto: POP3, sec: StartTLS, host: "pop.example.org", port: 110, auth: AuthAPOP, wantUser: "me"},
		{raw: "imaps://me@mail.example.org?auth=apop", wantErr: "POP3 method"},
		{raw: "imap://me@mail.example.org?tls=none", wantErr: "plaintext"},
		{raw: "imaps://me:hunter2@mail.example.org", wantErr: "password in the URL"},
		{raw: "ftp://me@mail.example.org", wantErr: "unknown scheme"},
		{raw: "imaps://mail.example.org", wantErr: "no user name"},
		{raw: "imaps://me@mail.example.org:99999", wantErr: "port"},
		{raw: "imaps://me@mail.example.org/INBOX", wantErr: "unexpected path"},
		{raw: "imaps://me@mail.example.org?foo=1", wantErr: "unknown parameter"},
		{raw: "mail.example.org", wantErr: "expected imaps://"},
	}
	for _, c := range cases {
		a, err := ParseURL(c.raw, ParseOptions{AllowPlaintext: c.plainOK})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", c.raw, err, c.wantErr)
			}
			if err != nil && !errors.Is(err, mailerr.ErrUsage) {
				t.Errorf("%s: error %v is not a usage error", c.raw, err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: error leaks the password: %v", c.raw, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		auth := c.auth
		if auth == "" {
			auth = AuthPassword
		}
		if a.Protocol != c.proto || a.Security != c.sec || a.Host != c.host || a.Port != c.port || a.Auth != auth || a.User != c.wantUser {
			t.Errorf("%s: got %+v", c.raw, a)
		}
	}
}

func TestSecrets(t *testing.T) {
	ctx := context.Background()
	t.Setenv("MAILARK_TEST_PW", "s3cret\n")
	if got, err := EnvSecret("MAILARK_TEST_PW").Secret(ctx); err != nil || got != "s3cret" {
		t.Fatalf("env secret = %q, %v", got, err)
	}
	if _, err := EnvSecret("MAILARK_TEST_UNSET_PW").Secret(ctx); !errors.Is(err, mailerr.ErrUsage) {
		t.Fatalf("unset env: %v", err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	if err := os.WriteFile(f, []byte("filepw\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := FileSecret(f).Secret(ctx); err != nil || got != "filepw" {
		t.Fatalf("file secret = %q, %v", got, err)
	}
	if got, err := CommandSecret("printf 'cmdpw\\n'").Secret(ctx); err != nil || got != "cmdpw" {
		t.Fatalf("command secret = %q, %v", got, err)
	}
	_, err := CommandSecret("echo nope >&2; exit 3").Secret(ctx)
	if !errors.Is(err, mailerr.ErrUsage) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("failing command: %v", err)
	}
	if _, err := CommandSecret("printf 'a\\rb'").Secret(ctx); err == nil {
		t.Fatal("a password with a bare CR was accepted; it could inject protocol commands")
	}
}

func TestCachedAsksOnce(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "n")
	src := Cached(CommandSecret("echo x >> " + counter + "; echo pw"))
	for i := 0; i < 3; i++ {
		if got, err := src.Secret(context.Background()); err != nil || got != "pw" {
			t.Fatalf("cached = %q, %v", got, err)
		}
	}
	b, _ := os.ReadFile(counter)
	if n := strings.Count(string(b), "x"); n != 1 {
		t.Fatalf("command ran %d times, want 1", n)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"imaps://me@host", "pop3://a@127.0.0.1:110", "imap://u@[::1]:143?tls=none", "imaps://u:p@h", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		a, err := ParseURL(raw, ParseOptions{})
		if err != nil {
			if !errors.Is(err, mailerr.ErrUsage) {
				t.Fatalf("%q: error %v is not a usage error", raw, err)
			}
			return
		}
		if a.Port < 1 || a.Port > 65535 || a.User == "" || a.Host == "" {
			t.Fatalf("%q: accepted an incomplete account %+v", raw, a)
		}
		if strings.ContainsAny(a.User, "\r\n\x00") {
			t.Fatalf("%q: user with control characters accepted", raw)
		}
		if a.Security == Plain && !IsLoopback(a.Host) {
			t.Fatalf("%q: plaintext to %s accepted without opt-in", raw, a.Host)
		}
	})
}
