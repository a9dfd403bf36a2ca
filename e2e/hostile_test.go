package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/faults"
	"github.com/mailark/mailark/internal/pop3server"
)

// hostileTimeout is the --timeout of runs against hostile servers; every
// run must end within hostileLimit however the server behaves.
const (
	hostileTimeout = 2 * time.Second
	hostileLimit   = 90 * time.Second
	// maxRSS bounds mailark's peak memory against any server: a 100 MB
	// line or an endless literal must be streamed or refused, not held.
	maxRSSKB = 200 << 10
)

// hostileCases counts the hostile server behaviours exercised, for the
// suite's figures.
var hostileCases sync.Map

func countHostile(name string) { hostileCases.Store(name, true) }

// sandbox is a temporary directory holding the archive and mailark's home,
// nothing else: whatever appears next to them was written outside the
// archive.
type sandbox struct {
	dir, home, root string
	etcBefore       []string
}

func newSandbox(t *testing.T) *sandbox {
	dir := t.TempDir()
	sb := &sandbox{dir: dir, home: filepath.Join(dir, "home"), root: filepath.Join(dir, "archive")}
	if err := os.Mkdir(sb.home, 0o700); err != nil {
		t.Fatal(err)
	}
	sb.etcBefore = etcNames(t)
	return sb
}

func etcNames(t *testing.T) []string {
	entries, err := os.ReadDir("/etc")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkContained walks the sandbox: nothing but the archive and the
// (still empty but for mailark's own state) home; no symlinks in the
// archive; every path below the root; and /etc unchanged.
func (sb *sandbox) checkContained(t *testing.T) {
	t.Helper()
	err := filepath.WalkDir(sb.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == sb.dir || p == sb.home || p == sb.root {
			return nil
		}
		switch {
		case strings.HasPrefix(p, sb.root+string(filepath.Separator)):
			if d.Type()&fs.ModeSymlink != 0 {
				t.Errorf("symlink in the archive: %s", p)
			}
		case strings.HasPrefix(p, sb.home+string(filepath.Separator)):
			// mailark keeps no files in HOME for a fetch.
			if !d.IsDir() {
				t.Errorf("file written outside the archive: %s", p)
			}
		default:
			t.Errorf("written outside the archive: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := etcNames(t); !slices.Equal(after, sb.etcBefore) {
		t.Errorf("/etc changed during the run")
	}
}

// hostileServer starts a scripted IMAP server with one message per folder
// (its body names the folder) unless the folder is given messages.
func hostileServer(t *testing.T, folders []*faults.Folder, hook func(s *faults.Session, c *faults.Command) bool) *faults.IMAPServer {
	t.Helper()
	for _, f := range folders {
		if f.UIDValidity == 0 {
			f.UIDValidity = 1
		}
		if f.Messages == nil {
			f.Messages = []faults.Message{{UID: 1, Date: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC),
				Body: []byte(fmt.Sprintf("Subject: folder %q\r\nMessage-ID: <%x@hostile>\r\n\r\nbody of %q\r\n", f.Name, sha([]byte(f.Name))[:16], f.Name))}}
		}
	}
	srv := &faults.IMAPServer{User: "victim", Folders: folders, Hook: hook}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// fetchHostile runs one fetch against a hostile server.
func fetchHostile(t *testing.T, sb *sandbox, srv *faults.IMAPServer, format string, extra ...string) result {
	t.Helper()
	args := append([]string{"fetch", "--timeout", hostileTimeout.String(), "--retries", "0", "imap://victim@" + srv.Addr(), format + ":" + sb.root}, extra...)
	r := run(t, sb.home, invocation{args: args, env: []string{"MAILARK_PASSWORD=whatever"}, limit: hostileLimit})
	if r.maxRSSKB > maxRSSKB {
		t.Errorf("peak RSS %d MB, want under %d MB", r.maxRSSKB>>10, maxRSSKB>>20)
	}
	return r
}

func messagesMsgs(n int, tag string) []faults.Message {
	var out []faults.Message
	for i := 1; i <= n; i++ {
		out = append(out, faults.Message{UID: uint32(i), Date: time.Date(2021, 5, i, 10, 0, 0, 0, time.UTC), Flags: []string{`\Seen`},
			Body: []byte(fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s-%d@hostile>\r\n\r\n%s\r\n", tag, i, tag, i, strings.Repeat("line of text\r\n", 50*i)))})
	}
	return out
}

func bodySums(msgs []faults.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, sha(m.Body))
	}
	slices.Sort(out)
	return out
}

// TestHostileFolderNames: names that are paths, NUL (only a literal can
// carry it), backslashes, 10,000 bytes, names differing only in case. No
// name writes outside the archive, distinct names never share a folder,
// and a name that cannot be kept is reported by name.
func TestHostileFolderNames(t *testing.T) {
	long := strings.Repeat("n", 10_000)
	names := []struct{ name, wire string }{
		{"INBOX", ""}, {"../evil", ""}, {"../../../../../../tmp/escape", ""}, {"/etc/x", ""},
		{"a\x00b", faults.Literal("a\x00b")}, {`back\slash`, ""}, {`..\..\win`, ""}, {long, ""},
		{"Case", ""}, {"CASE", ""}, {"case", ""}, {".hidden", ""}, {"cur", ""}, {"x/../../y", ""},
		{"a/./b", ""}, {"con", ""}, {"sp ace/ ", ""},
	}
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var folders []*faults.Folder
			for _, n := range names {
				folders = append(folders, &faults.Folder{Name: n.name, Wire: n.wire})
				countHostile("folder name " + n.name[:min(len(n.name), 20)])
			}
			srv := hostileServer(t, folders, nil)
			sb := newSandbox(t)
			r := fetchHostile(t, sb, srv, format)
			sb.checkContained(t)
			if r.code != 0 && r.code != 3 {
				t.Fatalf("want success or a partial result:\n%s", r)
			}
			got := archiveSums(t, format+":"+sb.root)
			// Every archived folder holds exactly one server folder's
			// message: nothing collided.
			owner := map[string]string{}
			for _, f := range folders {
				owner[sha(f.Messages[0].Body)] = f.Name
			}
			kept := 0
			for name, hs := range got {
				if len(hs) != 1 {
					t.Errorf("archive folder %.40q holds %d messages, want 1 (names collided)", name, len(hs))
					continue
				}
				if _, ok := owner[hs[0]]; !ok {
					t.Errorf("archive folder %.40q holds a message no server folder has", name)
				}
				kept++
			}
			for _, n := range []string{"Case", "CASE", "case"} {
				if len(got[n]) != 1 || owner[got[n][0]] != n {
					t.Errorf("folder %q: not kept apart from the names differing in case", n)
				}
			}
			// A folder that was not kept is named in a warning.
			for _, f := range folders {
				if !containsHash(got, sha(f.Messages[0].Body)) {
					short := f.Name[:min(len(f.Name), 12)]
					if !strings.Contains(r.stderr, strings.ReplaceAll(short, "\x00", `\x00`)) && !strings.Contains(r.stderr, short) {
						t.Errorf("folder %.40q was not archived and no warning names it:\n%s", f.Name, r.stderr)
					}
				}
			}
			t.Logf("%d of %d hostile names archived; exit %d\n%s", kept, len(folders), r.code, r.stderr)
		})
	}
}

func containsHash(s sums, h string) bool {
	for _, v := range s {
		if slices.Contains(v, h) {
			return true
		}
	}
	return false
}

// TestHostileServerResponses: broken or malicious answers to LIST and
// FETCH. Each run ends within its limit with bounded memory, writes only
// inside the archive, never archives bytes the server did not send as a
// message, and says what was wrong.
func TestHostileServerResponses(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) (*faults.IMAPServer, hostileCheck)
	}{
		{"invalid modified UTF-7", hostileBadUTF7},
		{"literal larger than announced", hostileLongLiteral},
		{"endless literal", hostileEndlessLiteral},
		{"RFC822.SIZE lies", hostileSizeLies},
		{"100 MB single line", hostileHugeLine},
		{"unsolicited EXPUNGE during fetch", hostileExpunge},
		{"UIDVALIDITY change mid-run", hostileUIDValidity},
		{"truncated literal then close", hostileTruncatedLiteral},
	}
	for i, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			t.Parallel()
			countHostile(tc.name)
			srv, check := tc.setup(t)
			sb := newSandbox(t)
			format := formatFor(i)
			r := fetchHostile(t, sb, srv, format)
			sb.checkContained(t)
			if r.elapsed > hostileLimit-10*time.Second {
				t.Errorf("run took %v", r.elapsed)
			}
			check(t, r, format+":"+sb.root, srv)
			t.Logf("exit %d in %v, peak RSS %d MB\n%s", r.code, r.elapsed.Round(time.Millisecond), r.maxRSSKB>>10, r.stderr)
		})
	}
}

type hostileCheck func(t *testing.T, r result, spec string, srv *faults.IMAPServer)

// onlyServerMessages: the archive holds nothing but messages (of allowed)
// and each at most once.
func onlyServerMessages(t *testing.T, spec string, allowed []string) sums {
	t.Helper()
	got := archiveSumsIfAny(t, spec)
	seen := map[string]int{}
	for _, h := range got.all() {
		seen[h]++
		if !slices.Contains(allowed, h) {
			t.Errorf("the archive holds bytes that are not a message the server sent")
		}
	}
	for h, n := range seen {
		if n > 1 {
			t.Errorf("message %s archived %d times", h[:12], n)
		}
	}
	return got
}

func wantFailure(t *testing.T, r result, mention ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("want a failure:\n%s", r)
	}
	low := strings.ToLower(r.stderr)
	for _, m := range mention {
		if strings.Contains(low, strings.ToLower(m)) {
			return
		}
	}
	t.Errorf("stderr does not say what was wrong (any of %q):\n%s", mention, r.stderr)
}

func hostileBadUTF7(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	good := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(3, "inbox")}
	bad1 := &faults.Folder{Name: "&Jjo", Attrs: ""}          // unterminated shift
	bad2 := &faults.Folder{Name: "caf&AOk-&AOk-", Attrs: ""} // two adjacent encoded runs: not minimal
	bad3 := &faults.Folder{Name: "&ZeVnLIqe", Attrs: ""}
	srv := hostileServer(t, []*faults.Folder{good, bad1, bad2, bad3}, nil)
	return srv, func(t *testing.T, r result, spec string, _ *faults.IMAPServer) {
		if r.code != 0 && r.code != 3 {
			t.Fatalf("want success or partial:\n%s", r)
		}
		got := onlyServerMessages(t, spec, append(bodySums(good.Messages), sha(bad1.Messages[0].Body), sha(bad2.Messages[0].Body), sha(bad3.Messages[0].Body)))
		if !slices.Equal(got["INBOX"], bodySums(good.Messages)) {
			t.Errorf("INBOX not archived next to folders with invalid names")
		}
		if r.code == 3 && !strings.Contains(r.stderr, "&Jjo") {
			t.Errorf("the warning does not name the invalid folder:\n%s", r.stderr)
		}
	}
}

// bodyFetch reports whether c is the FETCH of message bodies.
func bodyFetch(c *faults.Command) bool {
	_, items := faults.ParseFetch(c)
	return (c.Name == "UID FETCH" || c.Name == "FETCH") && items.Body
}

func hostileLongLiteral(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(4, "long")}
	srv := hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if !bodyFetch(c) {
			return false
		}
		seqs, msgs := s.Matching(c)
		for i, m := range msgs {
			if m.UID == 2 {
				// Announce fewer bytes than follow: the rest is read as
				// protocol.
				fmt.Fprintf(s, "* %d FETCH (UID %d FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" BODY[] {%d}\r\n", seqs[i], m.UID, len(m.Body)-300)
				s.Write(m.Body)
				s.Write([]byte(")\r\n"))
				continue
			}
			s.FetchResponse(seqs[i], m, true, len(m.Body), m.Body)
		}
		s.Printf("%s OK done", c.Tag)
		return true
	})
	return srv, func(t *testing.T, r result, spec string, _ *faults.IMAPServer) {
		// The message is the literal as announced; the bytes past it are
		// protocol garbage that must never be appended to it.
		announced := inbox.Messages[1].Body[:len(inbox.Messages[1].Body)-300]
		allowed := append(bodySums(inbox.Messages), sha(announced))
		got := onlyServerMessages(t, spec, allowed)
		for _, i := range []int{0, 2, 3} {
			if r.code == 0 && !slices.Contains(got["INBOX"], sha(inbox.Messages[i].Body)) {
				t.Errorf("message %d lost after the garbage", i+1)
			}
		}
	}
}

func hostileEndlessLiteral(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(2, "endless")}
	// A literal announced as 1 GiB (under any sane size limit) whose
	// bytes run at full speed, then stop: the timeout must end the run,
	// memory must stay flat, and nothing of it may be archived.
	const sent = 64 << 20
	srv := hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if !bodyFetch(c) {
			return false
		}
		fmt.Fprintf(s, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" BODY[] {%d}\r\n", 1<<30)
		chunk := bytes.Repeat([]byte("endless literal line\r\n"), 3000)
		for n := 0; n < sent; n += len(chunk) {
			if _, err := s.Write(chunk); err != nil {
				return true
			}
		}
		s.Hold()
		return true
	})
	return srv, func(t *testing.T, r result, spec string, _ *faults.IMAPServer) {
		wantFailure(t, r, "timeout", "timed out", "nothing for", "silent")
		if r.elapsed < hostileTimeout {
			t.Errorf("failed after %v, before the timeout", r.elapsed)
		}
		onlyServerMessages(t, spec, bodySums(inbox.Messages))
		_, root, _ := strings.Cut(spec, ":")
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if info, ierr := d.Info(); err == nil && ierr == nil && info.Size() > 1<<20 {
				t.Errorf("%s: %d bytes of the endless literal left in the archive", p, info.Size())
			}
			return nil
		})
	}
}

func hostileSizeLies(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(5, "sizes")}
	lies := []int{1, 10, 1 << 30, 0, 17}
	srv := hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if c.Name != "UID FETCH" && c.Name != "FETCH" {
			return false
		}
		_, items := faults.ParseFetch(c)
		seqs, msgs := s.Matching(c)
		for i, m := range msgs {
			s.FetchResponse(seqs[i], m, items.Body, lies[m.UID-1], m.Body)
		}
		s.Printf("%s OK done", c.Tag)
		return true
	})
	return srv, func(t *testing.T, r result, spec string, _ *faults.IMAPServer) {
		if r.code != 0 {
			t.Fatalf("the literal is the message, whatever RFC822.SIZE said; want success:\n%s", r)
		}
		got := onlyServerMessages(t, spec, bodySums(inbox.Messages))
		if !slices.Equal(got["INBOX"], bodySums(inbox.Messages)) {
			t.Errorf("INBOX: %d of %d messages archived", len(got["INBOX"]), len(inbox.Messages))
		}
	}
}

func hostileHugeLine(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(2, "line")}
	srv := hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if c.Name != "LIST" || !strings.Contains(c.Args, "*") {
			return false
		}
		s.Write([]byte(`* LIST () "/" "`))
		chunk := bytes.Repeat([]byte("a"), 1<<20)
		for range 100 {
			if _, err := s.Write(chunk); err != nil {
				return true
			}
		}
		s.Write([]byte("\"\r\n"))
		s.Printf("%s OK done", c.Tag)
		return true
	})
	return srv, func(t *testing.T, r result, spec string, _ *faults.IMAPServer) {
		wantFailure(t, r, "line", "long", "too", "large", "response")
		onlyServerMessages(t, spec, bodySums(inbox.Messages))
	}
}

func hostileExpunge(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(6, "expunge")}
	all := bodySums(inbox.Messages)
	var srv *faults.IMAPServer
	var once sync.Once
	srv = hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if !bodyFetch(c) {
			return false
		}
		// The first body fetch sees message 3 expunged by another
		// client: its EXPUNGE arrives before the bodies.
		once.Do(func() {
			srv.Lock()
			inbox.Messages = slices.Delete(inbox.Messages, 2, 3)
			srv.Unlock()
			s.Printf("* 3 EXPUNGE")
		})
		return false
	})
	return srv, func(t *testing.T, r result, spec string, srv *faults.IMAPServer) {
		if r.code != 0 {
			t.Fatalf("an expunge during the fetch is normal; want success:\n%s", r)
		}
		got := onlyServerMessages(t, spec, all)
		srv.Lock()
		want := bodySums(inbox.Messages)
		srv.Unlock()
		if missing, _ := multisetDiff(want, got["INBOX"]); missing > 0 {
			t.Errorf("%d message(s) still on the server are missing from the archive", missing)
		}
	}
}

func hostileUIDValidity(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", UIDValidity: 100, Messages: messagesMsgs(8, "validity")}
	all := bodySums(inbox.Messages)
	var srv *faults.IMAPServer
	var once sync.Once
	srv = hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if !bodyFetch(c) {
			return false
		}
		changed := false
		once.Do(func() {
			// Send three messages, then the mailbox is rebuilt under
			// our feet: new UIDVALIDITY, every UID renumbered.
			seqs, msgs := s.Matching(c)
			for i := range min(3, len(msgs)) {
				s.FetchResponse(seqs[i], msgs[i], true, len(msgs[i].Body), msgs[i].Body)
			}
			srv.Lock()
			inbox.UIDValidity = 200
			for i := range inbox.Messages {
				inbox.Messages[i].UID += 1000
			}
			srv.Unlock()
			s.Printf("* OK [UIDVALIDITY 200] mailbox rebuilt")
			s.Printf("* BYE mailbox rebuilt, reconnect")
			s.Flush()
			s.Close()
			changed = true
		})
		return changed
	})
	return srv, func(t *testing.T, r result, spec string, _ *faults.IMAPServer) {
		// The run may stop or reconnect; a second run must finish the
		// folder with every message exactly once.
		home := t.TempDir()
		_, root, _ := strings.Cut(spec, ":")
		format, _, _ := strings.Cut(spec, ":")
		sb := &sandbox{root: root, home: home}
		r2 := fetchHostile(t, sb, srv, format)
		if r2.code != 0 {
			t.Fatalf("rerun after the UIDVALIDITY change:\n%s", r2)
		}
		got := onlyServerMessages(t, spec, all)
		if !slices.Equal(got["INBOX"], all) {
			t.Errorf("after the UIDVALIDITY change: %d messages archived, want each of %d once", len(got["INBOX"]), len(all))
		}
	}
}

func hostileTruncatedLiteral(t *testing.T) (*faults.IMAPServer, hostileCheck) {
	inbox := &faults.Folder{Name: "INBOX", Messages: messagesMsgs(4, "cut")}
	all := bodySums(inbox.Messages)
	var cut sync.Once
	srv := hostileServer(t, []*faults.Folder{inbox}, func(s *faults.Session, c *faults.Command) bool {
		if !bodyFetch(c) {
			return false
		}
		done := false
		cut.Do(func() {
			seqs, msgs := s.Matching(c)
			for i, m := range msgs {
				if i == 2 {
					fmt.Fprintf(s, "* %d FETCH (UID %d FLAGS () INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" BODY[] {%d}\r\n", seqs[i], m.UID, len(m.Body))
					s.Write(m.Body[:len(m.Body)/2])
					break
				}
				s.FetchResponse(seqs[i], m, true, len(m.Body), m.Body)
			}
			s.Flush()
			s.Close()
			done = true
		})
		return done
	})
	return srv, func(t *testing.T, r result, spec string, srv *faults.IMAPServer) {
		// Whatever the first run kept, it is never the half message, and
		// a rerun completes the folder.
		onlyServerMessages(t, spec, all)
		format, root, _ := strings.Cut(spec, ":")
		r2 := fetchHostile(t, &sandbox{root: root, home: t.TempDir()}, srv, format)
		if r2.code != 0 {
			t.Fatalf("rerun:\n%s", r2)
		}
		if got := onlyServerMessages(t, spec, all); !slices.Equal(got["INBOX"], all) {
			t.Errorf("after the rerun: %d messages, want each of %d once", len(got["INBOX"]), len(all))
		}
	}
}

// TestHostilePOP3SameUIDLOtherMessage: a POP3 server that hands out a
// UIDL it used before for a different message. The archive keeps both
// messages, says so, and --delete then deletes nothing the archive lacks.
func TestHostilePOP3SameUIDLOtherMessage(t *testing.T) {
	t.Parallel()
	countHostile("POP3 same UIDL, other message")
	store := pop3server.NewMemStore()
	msgs := messagesMsgs(5, "pop")
	for _, m := range msgs[:4] {
		store.Add("victim", m.Body)
	}
	srv := &pop3server.Server{Store: store, Users: map[string]string{"victim": "pw"}}
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sb := newSandbox(t)
	spec := "maildir:" + sb.root
	pop := func(extra ...string) result {
		args := append([]string{"fetch", "--timeout", hostileTimeout.String(), "pop3://victim@" + addr, spec}, extra...)
		return run(t, sb.home, invocation{args: args, env: []string{"MAILARK_PASSWORD=pw"}, limit: hostileLimit})
	}
	if r := pop(); r.code != 0 {
		t.Fatalf("first fetch:\n%s", r)
	}
	// The server now gives message 1's UIDL to a different message.
	first := store.Messages("victim")[0]
	store.Replace("victim", first.UIDL, msgs[4].Body)
	r := pop()
	if r.code != 0 && r.code != 3 {
		t.Fatalf("second fetch:\n%s", r)
	}
	if !strings.Contains(strings.ToLower(r.stderr), "uidl") {
		t.Errorf("the reused UIDL is not reported:\n%s", r.stderr)
	}
	r = pop("--delete")
	if r.code != 0 {
		t.Fatalf("--delete run:\n%s", r)
	}
	sb.checkContained(t)
	got := archiveSums(t, spec)
	want := bodySums(msgs) // the four originals and the replacement
	if !slices.Equal(got["INBOX"], want) {
		t.Errorf("archive holds %d messages, want %d: the original and the message that reused its UIDL", len(got["INBOX"]), len(want))
	}
	if n := len(store.Messages("victim")); n != 0 {
		t.Errorf("%d messages left on the server after --delete", n)
	}
}
