package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/faults"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
	"github.com/mailark/mailark/internal/testkit"
)

// The folders of the integration account: the special-use ones, a
// two-level nested folder, a non-ASCII name and one that needs quoting.
var imapDovecotFolders = []string{"INBOX", "Sent", "Drafts", "Trash", "Archive", "Work/Projects/2024", "Entwürfe", "Tom & Jerry"}

func imapDovecotAccount(s *testbed.Server, user string) (*account.Account, *imapTrace) {
	tr := &imapTrace{}
	return &account.Account{
		Protocol: account.IMAP, User: user, Host: s.Host, Port: s.IMAPSPort,
		Security: account.ImplicitTLS, Auth: account.AuthPassword, Secret: testkit.Secret(testbed.Password),
		CAFile: s.CAFile, Timeout: 30 * time.Second, Trace: tr,
	}, tr
}

// serverSnapshot reads every folder through doveadm (not IMAP): the bytes
// as IMAP serves them, flags, INTERNALDATE.
func imapServerSnapshot(t testing.TB, s *testbed.Server, user string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, folder := range s.Folders(t, user) {
		keys := []string{}
		for _, m := range s.Fetch(t, user, folder) {
			keys = append(keys, msgKey(m.Raw, m.Flags, m.Date))
		}
		sort.Strings(keys)
		out[folder] = keys
	}
	return out
}

// bigMessage is a message of about size bytes: a base64 attachment.
func imapBigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Big Sender <big@example.org>\r\nTo: alice@example.org\r\nSubject: the 20 MB scan\r\n")
	b.WriteString("Message-ID: <big.1@example.org>\r\nDate: Tue, 4 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	r := rand.New(rand.NewPCG(20, 20))
	raw := make([]byte, 57)
	for b.Len() < size {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func TestIMAPDovecotAccountBothFormats(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "alice")
	seed := testbed.GenMessages(42, 1100, testbed.GenOptions{Folders: imapDovecotFolders,
		Since: time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	seed = append(seed, testbed.Message{Folder: "INBOX", Raw: imapBigMessage(20 << 20), Flags: []string{`\Flagged`},
		Date: time.Date(2025, 3, 4, 10, 0, 5, 0, time.UTC)})
	s.Import(t, user, seed)
	want := imapServerSnapshot(t, s, user)
	imapCheckSeedVariety(t, want)

	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			a, trace := imapDovecotAccount(s, user)
			dir := tempArchive(t)

			start := time.Now()
			res := mustIMAPFetch(t, a, format, dir, Options{})
			took := time.Since(start)
			t.Logf("full fetch into %s: %d messages, %.1f MB in %v (%.0f messages/s, %.1f MB/s)", format,
				res.NewMessages, float64(res.Bytes)/1e6, took.Round(time.Millisecond),
				float64(res.NewMessages)/took.Seconds(), float64(res.Bytes)/1e6/took.Seconds())
			if res.NewMessages != len(seed) {
				t.Errorf("fetched %d messages, seeded %d", res.NewMessages, len(seed))
			}
			if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
				t.Fatalf("archive differs from Dovecot:\n%s", d)
			}
			imapCheckFolderRecords(t, format, dir, a)

			// The server is unchanged: same messages, same flags (\Seen
			// included: unread mail is still unread).
			if d := diffSnapshots(want, imapServerSnapshot(t, s, user)); d != "" {
				t.Fatalf("fetch changed the server:\n%s", d)
			}

			// Nothing new: no bodies, no EXAMINE (LIST-STATUS with
			// UIDNEXT and HIGHESTMODSEQ shows every folder unchanged).
			trace.Reset()
			start = time.Now()
			res = mustIMAPFetch(t, a, format, dir, Options{})
			t.Logf("incremental run with nothing new: %v, %d client commands", time.Since(start).Round(time.Millisecond), trace.count(" T"))
			if res.NewMessages != 0 || trace.bodyFetches() != 0 || trace.count("EXAMINE") != 0 {
				t.Errorf("second run: %d messages, %d body fetches, %d EXAMINE", res.NewMessages, trace.bodyFetches(), trace.count("EXAMINE"))
			}
		})
	}
}

// checkSeedVariety makes sure the account has what the test claims: flags
// of every kind and dates across years.
func imapCheckSeedVariety(t *testing.T, snap map[string][]string) {
	t.Helper()
	joined := ""
	for _, keys := range snap {
		joined += strings.Join(keys, "\n") + "\n"
	}
	for _, f := range []string{`\seen`, `\answered`, `\flagged`, `\draft`, "$forwarded"} {
		if !strings.Contains(joined, f) {
			t.Fatalf("seeded account has no %s message", f)
		}
	}
	if !strings.Contains(joined, "|2009-") && !strings.Contains(joined, "|2010-") || !strings.Contains(joined, "|2024-") {
		t.Fatal("seeded dates do not span the years")
	}
	if len(snap["Work/Projects/2024"]) == 0 || len(snap["Entwürfe"]) == 0 {
		t.Fatal("nested or non-ASCII folder empty")
	}
}

// checkFolderRecords checks what the archive records about folders:
// special use, the server's name and delimiter, the source.
func imapCheckFolderRecords(t *testing.T, format archive.Format, dir string, a *account.Account) {
	t.Helper()
	arc, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	infos, err := arc.Folders()
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]string{}
	for _, fi := range infos {
		uses[fi.Name] = fi.SpecialUse
	}
	for name, use := range map[string]string{"Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Archive": `\Archive`, "INBOX": ""} {
		if uses[name] != use {
			t.Errorf("folder %s: special use %q, want %q", name, uses[name], use)
		}
	}
	f, err := arc.Folder("Work/Projects/2024")
	if err != nil {
		t.Fatal(err)
	}
	st := f.State()
	if st.ServerName != "Work/Projects/2024" || st.Delimiter != "/" || st.Source != a.String() || st.UIDValidity == 0 || st.LastUID == 0 || st.HighestModSeq == 0 {
		t.Errorf("sync state %+v", st)
	}
}

func TestIMAPDovecotIncrementalChanges(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "bob")
	s.Import(t, user, testbed.GenMessages(7, 300, testbed.GenOptions{Folders: imapDovecotFolders}))
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			a, trace := imapDovecotAccount(s, user)
			dir := tempArchive(t)
			mustIMAPFetch(t, a, format, dir, Options{})

			flagsOf := func() map[string]string {
				out := map[string]string{}
				for _, folder := range []string{"INBOX", "Sent"} {
					for _, m := range s.Fetch(t, user, folder) {
						out[fmt.Sprint(folder, m.UID)] = normFlags(m.Flags)
					}
				}
				return out
			}
			before := flagsOf()
			// +10 messages in several folders, 5 flag changes.
			added := testbed.GenMessages(time.Now().UnixNano(), 10, testbed.GenOptions{Folders: []string{"INBOX", "Sent", "Work/Projects/2024", "Entwürfe"}})
			s.Import(t, user, added)
			inbox := s.Fetch(t, user, "INBOX")
			sent := s.Fetch(t, user, "Sent")
			s.SetFlags(t, user, "INBOX", inbox[0].UID, []string{`\Seen`, `\Flagged`, "$Important"})
			s.SetFlags(t, user, "INBOX", inbox[1].UID, []string{`\Draft`})
			s.SetFlags(t, user, "INBOX", inbox[2].UID, []string{`\Answered`})
			s.SetFlags(t, user, "Sent", sent[0].UID, []string{`\Seen`, `\Deleted`})
			s.SetFlags(t, user, "Sent", sent[3].UID, []string{"$Forwarded", `\Seen`, "Work", "fmt-" + string(format)})
			changes := 0
			for k, v := range flagsOf() {
				if old, ok := before[k]; ok && old != v {
					changes++
				}
			}
			if format == archive.Maildir && changes < 4 {
				t.Fatalf("only %d flag changes set up", changes)
			}

			trace.Reset()
			res := mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 10 || res.FlagUpdates != changes {
				t.Errorf("fetched %d new and %d flag updates, want 10 and %d", res.NewMessages, res.FlagUpdates, changes)
			}
			if d := diffSnapshots(imapServerSnapshot(t, s, user), archiveSnapshot(t, format, dir)); d != "" {
				t.Fatalf("after changes:\n%s", d)
			}
			if n := trace.count("CHANGEDSINCE"); n == 0 {
				t.Error("flag sync did not use CONDSTORE CHANGEDSINCE")
			}

			// UIDVALIDITY reset: nothing doubled; one new message arrives
			// at the same time and is fetched.
			s.ResetUIDValidity(t, user, "INBOX")
			s.ResetUIDValidity(t, user, "Entwürfe")
			one := testbed.GenMessages(time.Now().UnixNano(), 1, testbed.GenOptions{Folders: []string{"INBOX"}})
			s.Import(t, user, one)
			res = mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 1 {
				t.Errorf("after UIDVALIDITY reset: %d new messages, want 1", res.NewMessages)
			}
			if d := diffSnapshots(imapServerSnapshot(t, s, user), archiveSnapshot(t, format, dir)); d != "" {
				t.Fatalf("after UIDVALIDITY reset:\n%s", d)
			}
			if res = mustIMAPFetch(t, a, format, dir, Options{}); res.NewMessages != 0 {
				t.Errorf("run after the rescan fetched %d", res.NewMessages)
			}
			// Undo for the other format's run.
			s.Expunge(t, user, "INBOX", s.UIDNext(t, user, "INBOX")-1)
		})
	}
}

func TestIMAPDovecotSTARTTLSAndSentItems(t *testing.T) {
	s := testbed.StartWith(t, testbed.Options{SentName: "Sent Items"})
	user := s.AddUser(t, "carol")
	s.Import(t, user, testbed.GenMessages(3, 40, testbed.GenOptions{Folders: []string{"INBOX", "Sent Items"}}))
	a, trace := imapDovecotAccount(s, user)
	a.Security, a.Port = account.StartTLS, s.IMAPPort
	dir := tempArchive(t)
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if !strings.Contains(trace.String(), "TLS 1.3 established") {
		t.Errorf("no STARTTLS in the trace")
	}
	if strings.Contains(trace.String(), testbed.Password) {
		t.Fatal("password in the trace")
	}
	arc, _ := archive.Open(context.Background(), "maildir:"+dir, archive.Options{ReadOnly: true})
	defer arc.Close()
	f, err := arc.Folder("Sent Items")
	if err != nil {
		t.Fatal(err)
	}
	if f.Info().SpecialUse != `\Sent` {
		t.Errorf("Sent Items special use %q", f.Info().SpecialUse)
	}
}

func TestIMAPDovecotFailuresLeaveArchiveUnchanged(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "dave")
	s.Import(t, user, testbed.GenMessages(5, 30, testbed.GenOptions{Folders: []string{"INBOX", "Sent"}}))
	for _, format := range imapFormats {
		good, _ := imapDovecotAccount(s, user)
		dir := tempArchive(t)
		mustIMAPFetch(t, good, format, dir, Options{})
		s.Import(t, user, testbed.GenMessages(time.Now().UnixNano(), 3, testbed.GenOptions{}))
		before := imapTreeDigest(t, dir)

		closed := imapClosedPort(t)
		for _, tc := range []struct {
			name    string
			mod     func(a *account.Account)
			kind    error
			message string
		}{
			{"wrong password", func(a *account.Account) { a.Secret = testkit.Secret("wrong") }, mailerr.ErrAuth, "login as dave at 127.0.0.1 refused"},
			{"wrong port", func(a *account.Account) { a.Port = closed }, mailerr.ErrNetwork, "connection refused; check host and port"},
			{"untrusted certificate", func(a *account.Account) { a.CAFile = "" }, mailerr.ErrTLS, "not trusted"},
			{"plaintext to the TLS port", func(a *account.Account) { a.Security = account.Plain; a.Timeout = time.Second }, mailerr.ErrNetwork, "use imaps://"},
		} {
			t.Run(string(format)+"/"+tc.name, func(t *testing.T) {
				a, _ := imapDovecotAccount(s, user)
				tc.mod(a)
				_, err := runIMAPFetch(t, a, format, dir, Options{})
				if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.message) {
					t.Fatalf("got %v, want %v containing %q", err, tc.kind, tc.message)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				if after := imapTreeDigest(t, dir); after != before {
					t.Errorf("archive changed by a failed run")
				}
			})
		}
	}
}

// closedPort is a loopback port nobody listens on.
func imapClosedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// treeDigest hashes every file's name, mode and contents under dir (the
// lock file's holder line excepted).
func imapTreeDigest(t testing.TB, dir string) string {
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		fmt.Fprintf(h, "%s %v\n", strings.TrimPrefix(p, dir), info.Mode())
		if d.Type().IsRegular() && d.Name() != "lock" {
			b, _ := os.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

// Network faults between mailark and Dovecot (a fault-injecting proxy):
// a reset in the middle of a literal, a stall beyond the timeout, a slow
// trickle. The run resumes on new connections and ends with every
// message exactly once.
func TestIMAPDovecotNetworkFaults(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "erin")
	seed := testbed.GenMessages(11, 300, testbed.GenOptions{Folders: []string{"INBOX", "Sent", "Work"}, MaxAttachment: 1 << 20, AttachmentRate: 0.3})
	s.Import(t, user, seed)
	want := imapServerSnapshot(t, s, user)
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			proxy := faultProxy(t, fmt.Sprintf("%s:%d", s.Host, s.IMAPSPort),
				faults.Fault{Kind: faults.Reset, After: 2 << 20}, // reset mid-transfer
				faults.Fault{Kind: faults.Stall, After: 1 << 20}, // silent beyond the timeout
				// Slow but alive: 512 bytes every 20 ms for 4 s, longer
				// than the timeout, never silent for as long.
				faults.Fault{Kind: faults.Trickle, Chunk: 512, Interval: 20 * time.Millisecond, For: 100 << 10})
			a, _ := imapDovecotAccount(s, user)
			a.Port, a.Timeout = proxy.Port(), time.Second
			dir := tempArchive(t)
			res := mustIMAPFetch(t, a, format, dir, Options{Connections: 1, Retries: 3})
			if res.NewMessages != len(seed) {
				t.Errorf("fetched %d, want %d", res.NewMessages, len(seed))
			}
			if proxy.Conns() < 3 {
				t.Errorf("only %d connections: the faults did not happen", proxy.Conns())
			}
			if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// When every connection fails, the run ends with a clear network error,
// keeps what was durable, and a later run completes it without doubles.
func TestIMAPDovecotConnectionKeepsDropping(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "frank")
	seed := testbed.GenMessages(12, 200, testbed.GenOptions{Folders: []string{"INBOX"}, AttachmentRate: 0.5})
	s.Import(t, user, seed)
	// Connection n is reset after n MiB; a run with one retry opens far
	// fewer connections than planned here.
	var cuts []faults.Fault
	for n := int64(1); n <= 32; n++ {
		cuts = append(cuts, faults.Fault{Kind: faults.Reset, After: n << 20})
	}
	proxy := faultProxy(t, fmt.Sprintf("%s:%d", s.Host, s.IMAPSPort), cuts...)
	a, _ := imapDovecotAccount(s, user)
	a.Port = proxy.Port()
	dir := tempArchive(t)
	res, err := runIMAPFetch(t, a, archive.Maildir, dir, Options{Retries: 1})
	if !errors.Is(err, mailerr.ErrNetwork) && !errors.Is(err, mailerr.ErrPartial) {
		t.Fatalf("got %v", err)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "INBOX") || strings.Contains(res.Warnings[0], "\n") {
		t.Errorf("warnings %q", res.Warnings)
	}
	a.Port = s.IMAPSPort
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if d := diffSnapshots(imapServerSnapshot(t, s, user), archiveSnapshot(t, archive.Maildir, dir)); d != "" {
		t.Fatal(d)
	}
}

// faultProxy puts a fault-injecting proxy in front of target until the
// test ends; its first connections suffer plan's faults, one each.
func faultProxy(t *testing.T, target string, plan ...faults.Fault) *faults.Proxy {
	t.Helper()
	p, err := faults.Listen(target)
	if err != nil {
		t.Fatal(err)
	}
	p.Plan(plan...)
	t.Cleanup(func() { p.Close() })
	return p
}
