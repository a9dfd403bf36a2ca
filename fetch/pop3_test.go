package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/pop3server"
	"github.com/mailark/mailark/internal/testcert"
	"github.com/mailark/mailark/internal/testkit"
)

func TestPOP3FetchIncrementalBothFormats(t *testing.T) {
	for _, format := range popFormats {
		t.Run(string(format), func(t *testing.T) {
			fx := newPopFixture(t, pop3server.Hooks{})
			fx.add(popMessages(1, 120)...)
			dir := t.TempDir()

			res := mustPOP3(t, fx.acct, format, dir, Options{})
			if res.NewMessages != 120 || res.Deleted != 0 {
				t.Fatalf("first run: %+v", res)
			}
			if got, want := popArchiveSums(t, format, dir), fx.serverSums(); !popSumsEqual(want, got) {
				t.Fatalf("archive differs from server: %s", popSumsDiff(want, got))
			}
			if n := len(fx.store.Messages("carol")); n != 120 {
				t.Fatalf("server lost messages without --delete: %d left", n)
			}

			fx.trace.Reset()
			res = mustPOP3(t, fx.acct, format, dir, Options{})
			if res.NewMessages != 0 || res.Bytes != 0 {
				t.Fatalf("rerun fetched %d messages", res.NewMessages)
			}
			if n := fx.trace.count("RETR") + fx.trace.count("TOP"); n != 0 {
				t.Fatalf("rerun sent %d RETR/TOP commands", n)
			}

			fx.add(popMessages(2, 20)...)
			res = mustPOP3(t, fx.acct, format, dir, Options{})
			if res.NewMessages != 20 {
				t.Fatalf("20 new messages: fetched %d", res.NewMessages)
			}
			if got, want := popArchiveSums(t, format, dir), fx.serverSums(); !popSumsEqual(want, got) {
				t.Fatalf("archive differs from server: %s", popSumsDiff(want, got))
			}

			arc := popOpenArchive(t, format, dir)
			defer arc.Close()
			f, err := arc.Folder("INBOX")
			if err != nil {
				t.Fatal(err)
			}
			st := f.State()
			if st.Source != fx.acct.String() || st.LastSync.IsZero() {
				t.Fatalf("sync state not recorded: %+v", st)
			}
			for _, m := range f.Entries() {
				if m.UIDL == "" || len(m.Flags) != 0 || m.Date.IsZero() || m.Date.Year() != 2024 {
					t.Fatalf("message %s: UIDL %q flags %v date %v", m.Key, m.UIDL, m.Flags, m.Date)
				}
			}
		})
	}
}

func TestPOP3PipeliningOffFetchesTheSame(t *testing.T) {
	for _, window := range []int{1, 3} {
		fx := newPopFixture(t, pop3server.Hooks{})
		fx.add(popMessages(3, 40)...)
		dir := t.TempDir()
		res := mustPOP3(t, fx.acct, archive.Mbox, dir, Options{POP3Window: window})
		if res.NewMessages != 40 {
			t.Fatalf("window %d: %d fetched", window, res.NewMessages)
		}
		if got, want := popArchiveSums(t, archive.Mbox, dir), fx.serverSums(); !popSumsEqual(want, got) {
			t.Fatalf("window %d: %s", window, popSumsDiff(want, got))
		}
	}
}

func TestPOP3MarkSeen(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{})
	fx.add(popMessages(4, 3)...)
	dir := t.TempDir()
	mustPOP3(t, fx.acct, archive.Maildir, dir, Options{MarkSeen: true})
	arc := popOpenArchive(t, archive.Maildir, dir)
	defer arc.Close()
	f, _ := arc.Folder("INBOX")
	for _, m := range f.Entries() {
		if !slices.Equal(m.Flags, []string{archive.FlagSeen}) {
			t.Fatalf("flags %v, want \\Seen", m.Flags)
		}
	}
}

func TestPOP3DeleteRemovesExactlyWhatIsArchived(t *testing.T) {
	for _, format := range popFormats {
		t.Run(string(format), func(t *testing.T) {
			fx := newPopFixture(t, pop3server.Hooks{})
			msgs := popMessages(5, 50)
			fx.add(msgs[:30]...)
			want := fx.serverSums()
			dir := t.TempDir()

			// An earlier run without --delete archives 30.
			mustPOP3(t, fx.acct, format, dir, Options{})
			fx.add(msgs[30:]...)
			for k, v := range fx.serverSums() {
				want[k] = v
			}
			res := mustPOP3(t, fx.acct, format, dir, Options{Delete: true})
			if res.NewMessages != 20 || res.Deleted != 50 {
				t.Fatalf("delete run: new %d deleted %d, want 20 and 50", res.NewMessages, res.Deleted)
			}
			if n := len(fx.store.Messages("carol")); n != 0 {
				t.Fatalf("%d messages left on the server", n)
			}
			if got := popArchiveSums(t, format, dir); !popSumsEqual(want, got) {
				t.Fatalf("archive: %s", popSumsDiff(want, got))
			}
		})
	}
}

func TestPOP3DeleteOlderThan(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{})
	msgs := popMessages(6, 15)
	fx.add(msgs[:10]...)
	dir := t.TempDir()
	mustPOP3(t, fx.acct, archive.Maildir, dir, Options{})
	// Added is kept in seconds: wait until the first ten are 2 s old.
	time.Sleep(2100 * time.Millisecond)
	fx.add(msgs[10:]...)
	res := mustPOP3(t, fx.acct, archive.Maildir, dir, Options{DeleteOlderThan: 2 * time.Second})
	if res.NewMessages != 5 || res.Deleted != 10 {
		t.Fatalf("new %d deleted %d, want 5 and 10", res.NewMessages, res.Deleted)
	}
	left := fx.store.Messages("carol")
	if len(left) != 5 {
		t.Fatalf("%d messages left, want the 5 new ones", len(left))
	}
	for _, m := range left {
		if !slices.ContainsFunc(msgs[10:], func(b []byte) bool { return bytes.Equal(b, m.Data) }) {
			t.Fatalf("an old message is still on the server: %.60q", m.Data)
		}
	}
	// A day's limit deletes nothing now.
	res = mustPOP3(t, fx.acct, archive.Maildir, dir, Options{DeleteOlderThan: 24 * time.Hour})
	if res.Deleted != 0 || len(fx.store.Messages("carol")) != 5 {
		t.Fatalf("24h limit deleted %d", res.Deleted)
	}
}

func TestPOP3UIDLReusedForAnotherMessage(t *testing.T) {
	for _, format := range popFormats {
		t.Run(string(format), func(t *testing.T) {
			fx := newPopFixture(t, pop3server.Hooks{})
			msgs := popMessages(7, 6)
			fx.add(msgs[:4]...)
			dir := t.TempDir()
			mustPOP3(t, fx.acct, format, dir, Options{})
			want := fx.serverSums()

			// The server gives message 1's UIDL to a new message of another
			// size, and message 2's to a new one of exactly the same size.
			server := fx.store.Messages("carol")
			other := msgs[4]
			sameSize := bytes.Clone(server[1].Data)
			copy(sameSize[len(sameSize)-12:], "REPLACED!!\r\n")
			fx.store.Replace("carol", server[0].UIDL, other)
			fx.store.Replace("carol", server[1].UIDL, sameSize)
			want[popSHA(pop3server.Wire(other))]++
			want[popSHA(pop3server.Wire(sameSize))]++

			// Without --delete the size change is noticed and every UIDL
			// match is checked by header: the same-size one differs in
			// its body only, so its header matches and it is not fetched
			// yet; --delete confirms by content before deleting.
			res := mustPOP3(t, fx.acct, format, dir, Options{})
			if res.NewMessages < 1 || !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "reuses UIDLs") }) {
				t.Fatalf("reuse not noticed: %+v", res)
			}
			res = mustPOP3(t, fx.acct, format, dir, Options{Delete: true})
			if n := len(fx.store.Messages("carol")); n != 0 {
				t.Fatalf("%d messages left on the server after --delete", n)
			}
			if got := popArchiveSums(t, format, dir); !popSumsEqual(want, got) {
				t.Fatalf("archive: %s (warnings %q)", popSumsDiff(want, got), res.Warnings)
			}
		})
	}
}

func TestPOP3RegeneratedUIDLsAddNothing(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{})
	msgs := popMessages(8, 25)
	fx.add(msgs...)
	dir := t.TempDir()
	mustPOP3(t, fx.acct, archive.Mbox, dir, Options{})
	want := fx.serverSums()

	// The server is rebuilt: same messages, all new UIDLs.
	for _, m := range fx.store.Messages("carol") {
		fx.store.Remove("carol", m.UIDL)
		fx.store.AddWithUIDL("carol", "new-"+m.UIDL, m.Data)
	}
	res := mustPOP3(t, fx.acct, archive.Mbox, dir, Options{})
	if res.NewMessages != 0 || res.Duplicates != 25 {
		t.Fatalf("regenerated UIDLs: new %d duplicates %d", res.NewMessages, res.Duplicates)
	}
	// The aliases make the next run as cheap as ever.
	fx.trace.Reset()
	res = mustPOP3(t, fx.acct, archive.Mbox, dir, Options{})
	if res.NewMessages != 0 || fx.trace.count("TOP")+fx.trace.count("RETR") != 0 {
		t.Fatalf("third run: new %d, %d TOP/RETR", res.NewMessages, fx.trace.count("TOP")+fx.trace.count("RETR"))
	}
	// And --delete can now delete them.
	res = mustPOP3(t, fx.acct, archive.Mbox, dir, Options{Delete: true})
	if res.Deleted != 25 || len(fx.store.Messages("carol")) != 0 {
		t.Fatalf("delete after regeneration: %d deleted", res.Deleted)
	}
	if got := popArchiveSums(t, archive.Mbox, dir); !popSumsEqual(want, got) {
		t.Fatalf("archive: %s", popSumsDiff(want, got))
	}
}

func TestPOP3WithoutUIDL(t *testing.T) {
	for _, noTop := range []bool{false, true} {
		t.Run(fmt.Sprintf("noTOP=%v", noTop), func(t *testing.T) {
			fx := newPopFixture(t, pop3server.Hooks{NoUIDL: true, NoTOP: noTop})
			msgs := popMessages(9, 21)
			fx.add(msgs[:20]...)
			dir := t.TempDir()
			res := mustPOP3(t, fx.acct, archive.Maildir, dir, Options{})
			if res.NewMessages != 20 || !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "does not support UIDL") }) {
				t.Fatalf("first run: %+v", res)
			}
			res = mustPOP3(t, fx.acct, archive.Maildir, dir, Options{})
			if res.NewMessages != 0 || res.Duplicates != 20 {
				t.Fatalf("rerun: new %d duplicates %d", res.NewMessages, res.Duplicates)
			}
			fx.add(msgs[20])
			res = mustPOP3(t, fx.acct, archive.Maildir, dir, Options{Delete: true})
			if res.NewMessages != 1 || res.Deleted != 21 || len(fx.store.Messages("carol")) != 0 {
				t.Fatalf("delete run: new %d deleted %d", res.NewMessages, res.Deleted)
			}
			want := map[string]int{}
			for _, m := range msgs {
				want[popSHA(pop3server.Wire(m))]++
			}
			if got := popArchiveSums(t, archive.Maildir, dir); !popSumsEqual(want, got) {
				t.Fatalf("archive: %s", popSumsDiff(want, got))
			}
		})
	}
}

func TestPOP3IdenticalCopiesAreCounted(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{})
	m := popMessages(10, 1)[0]
	fx.add(m, m)
	dir := t.TempDir()
	res := mustPOP3(t, fx.acct, archive.Mbox, dir, Options{})
	if res.NewMessages != 2 {
		t.Fatalf("two copies: fetched %d", res.NewMessages)
	}
	res = mustPOP3(t, fx.acct, archive.Mbox, dir, Options{})
	if res.NewMessages != 0 {
		t.Fatalf("rerun fetched %d", res.NewMessages)
	}
	if got := popArchiveSums(t, archive.Mbox, dir); got[popSHA(pop3server.Wire(m))] != 2 {
		t.Fatalf("archive holds %v", got)
	}
}

func TestPOP3LyingListSizes(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{ListSize: func(pop3server.Info) int64 { return 100 }})
	fx.add(popMessages(11, 10)...)
	dir := t.TempDir()
	res := mustPOP3(t, fx.acct, archive.Maildir, dir, Options{})
	if res.NewMessages != 10 {
		t.Fatalf("fetched %d", res.NewMessages)
	}
	res = mustPOP3(t, fx.acct, archive.Maildir, dir, Options{Delete: true})
	if res.NewMessages != 0 || res.Deleted != 10 {
		t.Fatalf("rerun with delete: new %d deleted %d", res.NewMessages, res.Deleted)
	}
	if got, n := popArchiveSums(t, archive.Maildir, dir), 10; len(got) != n {
		t.Fatalf("archive has %d distinct messages", len(got))
	}
}

func TestPOP3DryRunWritesNothing(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{})
	fx.add(popMessages(12, 7)...)
	dir := t.TempDir()
	arc := popOpenArchive(t, archive.Maildir, dir)
	arc.Close()
	before := popTreeDigest(t, dir)
	res := mustPOP3(t, fx.acct, archive.Maildir, dir, Options{DryRun: true, Delete: true})
	if !res.DryRun || len(res.Planned) != 1 || res.Planned[0].Messages != 7 || !res.Planned[0].Create || res.Deleted != 7 {
		t.Fatalf("dry run result: %+v", res)
	}
	if after := popTreeDigest(t, dir); after != before {
		t.Fatal("dry run changed the archive")
	}
	if n := len(fx.store.Messages("carol")); n != 7 {
		t.Fatalf("dry run deleted from the server: %d left", n)
	}
	if fx.trace.count("DELE") != 0 || fx.trace.count("RETR") != 0 {
		t.Fatal("dry run sent RETR or DELE")
	}
}

func TestPOP3FailuresChangeNothing(t *testing.T) {
	ca, err := testcert.New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conf := ca.ServerConfig()
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	cases := []struct {
		name string
		kind error
		code int
		edit func(fx *popFixture)
	}{
		{"wrong password", mailerr.ErrAuth, mailerr.ExitAuth, func(fx *popFixture) { fx.acct.Secret = testkit.Secret("not-it") }},
		{"unreachable", mailerr.ErrNetwork, mailerr.ExitNetwork, func(fx *popFixture) {
			fx.acct.Host, fx.acct.Port = popSplitAddr(t, closedPort)
		}},
		{"untrusted certificate", mailerr.ErrTLS, mailerr.ExitTLS, func(fx *popFixture) {
			fx.srv.TLSConfig = conf
			fx.acct.Security = account.StartTLS
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newPopFixture(t, pop3server.Hooks{})
			fx.add(popMessages(13, 5)...)
			dir := t.TempDir()
			mustPOP3(t, fx.acct, archive.Maildir, dir, Options{})
			fx.add(popMessages(14, 3)...)
			before := popTreeDigest(t, dir)
			tc.edit(fx)
			_, err := runPOP3(t, fx.acct, archive.Maildir, dir, Options{Delete: true})
			if !errors.Is(err, tc.kind) || mailerr.ExitCode(err) != tc.code {
				t.Fatalf("err = %v (exit %d), want %v (exit %d)", err, mailerr.ExitCode(err), tc.kind, tc.code)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), pop3TestPassword) {
				t.Fatalf("error is not one clean line: %q", err)
			}
			if popTreeDigest(t, dir) != before {
				t.Fatal("the archive changed")
			}
			if n := len(fx.store.Messages("carol")); n != 8 {
				t.Fatalf("server has %d messages, want 8", n)
			}
		})
	}
}

func popSplitAddr(t *testing.T, addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(port, &p)
	return host, p
}

func TestPOP3DroppedConnectionThenRerun(t *testing.T) {
	msgs := popMessages(15, 60)
	var total int64
	for _, m := range msgs {
		total += int64(len(m))
	}
	// The first session dies halfway through the transfer.
	fx := newPopFixture(t, pop3server.Hooks{Session: func(n int) int64 {
		if n == 1 {
			return total / 2
		}
		return 0
	}})
	fx.add(msgs...)
	want := fx.serverSums()
	dir := t.TempDir()
	res, err := runPOP3(t, fx.acct, archive.Maildir, dir, Options{Delete: true})
	if !errors.Is(err, mailerr.ErrNetwork) {
		t.Fatalf("err = %v, want a network error", err)
	}
	if res.Deleted != 0 || len(fx.store.Messages("carol")) != 60 {
		t.Fatal("a dropped session deleted messages")
	}
	if res.NewMessages == 0 || res.NewMessages >= 60 {
		t.Fatalf("the messages before the drop should be committed: %d", res.NewMessages)
	}
	res = mustPOP3(t, fx.acct, archive.Maildir, dir, Options{Delete: true})
	if res.Deleted != 60 || len(fx.store.Messages("carol")) != 0 {
		t.Fatalf("rerun deleted %d", res.Deleted)
	}
	if got := popArchiveSums(t, archive.Maildir, dir); !popSumsEqual(want, got) {
		t.Fatalf("archive: %s", popSumsDiff(want, got))
	}
}

func TestPOP3QuitRefusedKeepsArchiveAndRetriesLater(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{QuitFails: true})
	fx.add(popMessages(16, 5)...)
	dir := t.TempDir()
	res, err := runPOP3(t, fx.acct, archive.Mbox, dir, Options{Delete: true})
	if !errors.Is(err, mailerr.ErrServer) || res.Deleted != 0 || res.NewMessages != 5 {
		t.Fatalf("refused QUIT: err %v, %+v", err, res)
	}
	fx.srv.SetHooks(pop3server.Hooks{})
	res = mustPOP3(t, fx.acct, archive.Mbox, dir, Options{Delete: true})
	if res.NewMessages != 0 || res.Deleted != 5 || len(fx.store.Messages("carol")) != 0 {
		t.Fatalf("rerun: %+v", res)
	}
}

func TestPOP3ArchiveWriteFailureDeletesNothing(t *testing.T) {
	if os.Getuid() == 0 {
		// root ignores permissions; use a read-only bind instead of chmod.
		t.Skip("root writes through read-only permissions; covered by the disk-full test")
	}
	fx := newPopFixture(t, pop3server.Hooks{})
	fx.add(popMessages(17, 5)...)
	dir := t.TempDir()
	arc := popOpenArchive(t, archive.Maildir, dir)
	if _, err := arc.CreateFolder("INBOX", ""); err != nil {
		t.Fatal(err)
	}
	arc.Close()
	os.Chmod(filepath.Join(dir, "INBOX", "tmp"), 0o500)
	defer os.Chmod(filepath.Join(dir, "INBOX", "tmp"), 0o700)
	_, err := runPOP3(t, fx.acct, archive.Maildir, dir, Options{Delete: true})
	if !errors.Is(err, mailerr.ErrLocalIO) {
		t.Fatalf("err = %v", err)
	}
	if len(fx.store.Messages("carol")) != 5 {
		t.Fatal("messages deleted although the archive could not take them")
	}
}

func TestPOP3CancelledDeletesNothing(t *testing.T) {
	fx := newPopFixture(t, pop3server.Hooks{StallAfter: 20000})
	fx.add(popMessages(18, 30)...)
	dir := t.TempDir()
	arc := popOpenArchive(t, archive.Maildir, dir)
	defer arc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := POP3(ctx, fx.acct, arc, Options{Delete: true})
	if !errors.Is(err, mailerr.ErrInterrupted) || !strings.Contains(err.Error(), "what was fetched is kept") {
		t.Fatalf("err = %v", err)
	}
	if len(fx.store.Messages("carol")) != 30 {
		t.Fatal("cancelled run deleted messages")
	}
}

func TestPOP3StalledServerTimesOutThenRerunCompletes(t *testing.T) {
	msgs := popMessages(19, 40)
	var total int64
	for _, m := range msgs {
		total += int64(len(m))
	}
	fx := newPopFixture(t, pop3server.Hooks{StallAfter: total / 3})
	fx.add(msgs...)
	want := fx.serverSums()
	fx.acct.Timeout = 300 * time.Millisecond
	dir := t.TempDir()
	start := time.Now()
	res, err := runPOP3(t, fx.acct, archive.Mbox, dir, Options{Delete: true})
	if !errors.Is(err, mailerr.ErrNetwork) || time.Since(start) > 5*time.Second {
		t.Fatalf("stalled server: err %v after %v", err, time.Since(start))
	}
	if res.Deleted != 0 || len(fx.store.Messages("carol")) != 40 {
		t.Fatal("a stalled run deleted messages")
	}
	fx.srv.SetHooks(pop3server.Hooks{})
	res = mustPOP3(t, fx.acct, archive.Mbox, dir, Options{Delete: true})
	if res.Deleted != 40 || len(fx.store.Messages("carol")) != 0 {
		t.Fatalf("rerun: %+v", res)
	}
	if got := popArchiveSums(t, archive.Mbox, dir); !popSumsEqual(want, got) {
		t.Fatalf("archive: %s", popSumsDiff(want, got))
	}
}
