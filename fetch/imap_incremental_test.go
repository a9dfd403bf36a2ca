package fetch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// Ten folders, as in the measurement of docs/imap.md.
var imapTenFolders = []string{"INBOX", "Sent", "Drafts", "Trash", "Archive", "Lists/go", "Lists/dovecot",
	"Work/Projects/2024", "Work/Projects/2025", "Entwürfe"}

// damageIndexes appends a line that is not an index record to every
// folder's index and returns a function that puts them back. While they
// are damaged, any run that loads an index fails with "archive damaged":
// an exact detector of index loads.
func damageIndexes(t *testing.T, dir string) (undo func()) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, ".mailark", "folders", "*", "index.jsonl"))
	if len(files) == 0 {
		t.Fatal("no index files to damage")
	}
	saved := map[string][]byte{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		saved[file] = data
		if err := os.WriteFile(file, append(slices.Clip(data), "not an index record\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for file, data := range saved {
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func lastSyncs(t *testing.T, format archive.Format, dir string) map[string]time.Time {
	t.Helper()
	arc, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	out := map[string]time.Time{}
	for _, name := range arc.FolderNames() {
		st, err := arc.FolderState(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = st.LastSync
	}
	return out
}

// An incremental run with nothing new reads each folder's sync state and
// never its index: its cost grows with the folders, not the messages.
func TestIMAPDovecotEmptyRunLoadsNoIndex(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "quiet")
	s.Import(t, user, testbed.GenMessages(11, 2000, testbed.GenOptions{Folders: imapTenFolders, AttachmentRate: -1}))
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			a, trace := imapDovecotAccount(s, user)
			dir := tempArchive(t)
			mustIMAPFetch(t, a, format, dir, Options{})
			before := lastSyncs(t, format, dir)
			undo := damageIndexes(t, dir)

			trace.Reset()
			res, err := runIMAPFetch(t, a, format, dir, Options{})
			if err != nil {
				t.Fatalf("empty run over damaged indexes failed, so it loaded one: %v", err)
			}
			if res.NewMessages != 0 || res.FlagUpdates != 0 || trace.count("EXAMINE") != 0 {
				t.Errorf("empty run: %d new, %d flag updates, %d EXAMINE", res.NewMessages, res.FlagUpdates, trace.count("EXAMINE"))
			}
			after := lastSyncs(t, format, dir)
			if len(after) < len(imapTenFolders) {
				t.Fatalf("%d folders in the archive, want at least %d", len(after), len(imapTenFolders))
			}
			for name, at := range after {
				if !at.After(before[name]) {
					t.Errorf("folder %q: last sync not recorded by the empty run (%v, before %v)", name, at, before[name])
				}
			}

			// The detector works: a folder with something new is loaded.
			s.Import(t, user, testbed.GenMessages(time.Now().UnixNano(), 1, testbed.GenOptions{Folders: []string{"Lists/go"}}))
			defer s.Expunge(t, user, "Lists/go", s.UIDNext(t, user, "Lists/go")-1) // for the other format
			if _, err := runIMAPFetch(t, a, format, dir, Options{}); !errors.Is(err, mailerr.ErrDamaged) {
				t.Fatalf("run with a new message over a damaged index = %v, want damaged", err)
			}
			undo()
			if res := mustIMAPFetch(t, a, format, dir, Options{}); res.NewMessages != 1 {
				t.Errorf("after repairing the indexes: %d new, want 1", res.NewMessages)
			}
		})
	}
}

// renumberFolder gives a Dovecot folder a new UIDVALIDITY and new UIDs,
// as a server does when it rebuilds a mailbox: it is recreated with its
// messages in reverse order, leaving out those with the highest old UIDs.
// It returns the old UIDVALIDITY.
func renumberFolder(t *testing.T, s *testbed.Server, user, folder string, drop int) uint32 {
	t.Helper()
	_, _, old := s.Status(t, user, folder)
	msgs := s.Fetch(t, user, folder)
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	msgs = msgs[:len(msgs)-drop]
	slices.Reverse(msgs)
	s.Doveadm(t, "mailbox", "delete", "-u", user, folder)
	for i := range msgs {
		msgs[i].Folder, msgs[i].UID = folder, 0
	}
	s.Import(t, user, msgs)
	if _, _, now := s.Status(t, user, folder); now == old {
		s.ResetUIDValidity(t, user, folder)
	}
	return old
}

// After a UIDVALIDITY change the rescan rebinds the archived messages to
// their new UIDs: flag changes on them reach the archive afterwards, and
// a new message whose UID an old, now deleted, message once had is
// fetched.
func TestIMAPDovecotFlagsAfterUIDValidityReset(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "renum")
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			folder := "Box-" + string(format)
			s.Import(t, user, testbed.GenMessages(5, 30, testbed.GenOptions{Folders: []string{folder}, AttachmentRate: -1}))
			a, trace := imapDovecotAccount(s, user)
			dir := tempArchive(t)
			mustIMAPFetch(t, a, format, dir, Options{})

			old := renumberFolder(t, s, user, folder, 5) // old UIDs 1..25 become 25..1; 26..30 are gone
			if _, _, now := s.Status(t, user, folder); now == old {
				t.Fatal("UIDVALIDITY did not change")
			}
			res := mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 0 {
				t.Errorf("rescan fetched %d new messages, want 0", res.NewMessages)
			}

			// Flag changes on old messages, seen through CONDSTORE.
			msgs := s.Fetch(t, user, folder)
			sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
			changes := map[uint32][]string{
				msgs[0].UID:  {`\Flagged`, `\Seen`},
				msgs[7].UID:  {`\Answered`},
				msgs[24].UID: {"$Forwarded", "Work"},
			}
			for uid, flags := range changes {
				s.SetFlags(t, user, folder, uid, flags)
			}
			trace.Reset()
			res = mustIMAPFetch(t, a, format, dir, Options{})
			if res.FlagUpdates != len(changes) {
				t.Errorf("%d flag updates after the rescan, want %d", res.FlagUpdates, len(changes))
			}
			if trace.count("CHANGEDSINCE") == 0 {
				t.Error("flag sync did not use CHANGEDSINCE")
			}

			// UID 26 belonged to a message deleted in the renumbering.
			newUID := s.UIDNext(t, user, folder)
			if newUID != 26 {
				t.Fatalf("next UID is %d; the test needs 26, an old archived UID", newUID)
			}
			s.Import(t, user, testbed.GenMessages(6, 1, testbed.GenOptions{Folders: []string{folder}, AttachmentRate: -1}))
			if res = mustIMAPFetch(t, a, format, dir, Options{}); res.NewMessages != 1 {
				t.Errorf("new message with a formerly archived UID: fetched %d, want 1", res.NewMessages)
			}

			want := imapServerSnapshot(t, s, user)[folder]
			got := archiveSnapshot(t, format, dir)[folder]
			// The archive keeps the five messages deleted on the server.
			if len(got) != len(want)+5 {
				t.Fatalf("archive holds %d messages, want the server's %d plus the 5 deleted", len(got), len(want))
			}
			for _, k := range want {
				i := slices.Index(got, k)
				if i < 0 {
					t.Errorf("server message not in the archive as it is on the server (flags?): %s", strings.SplitN(k, "|", 2)[0][:12])
					continue
				}
				got = slices.Delete(got, i, i+1)
			}
		})
	}
}

// TestIMAPDovecotEmptyRunScale measures an incremental run with nothing
// new over ten folders holding 5,000 and 100,000 messages (the figures of
// docs/imap.md). It takes minutes, so it runs only when asked:
// MAILARK_EMPTY_RUN_SCALE=1 go test ./fetch -run EmptyRunScale -v
func TestIMAPDovecotEmptyRunScale(t *testing.T) {
	if os.Getenv("MAILARK_EMPTY_RUN_SCALE") == "" {
		t.Skip("measurement; set MAILARK_EMPTY_RUN_SCALE=1 to run it")
	}
	s := testbed.Start(t)
	for _, total := range []int{5000, 100000} {
		user := s.AddUser(t, fmt.Sprintf("scale%d", total))
		s.Import(t, user, testbed.GenMessages(int64(total), total, testbed.GenOptions{Folders: imapTenFolders, AttachmentRate: -1}))
		for _, format := range imapFormats {
			a, _ := imapDovecotAccount(s, user)
			a.Trace = nil
			dir := tempArchive(t)
			start := time.Now()
			res := mustIMAPFetch(t, a, format, dir, Options{})
			full := time.Since(start)
			var runs []time.Duration
			for range 7 {
				start = time.Now()
				if res := mustIMAPFetch(t, a, format, dir, Options{}); res.NewMessages != 0 {
					t.Fatalf("empty run fetched %d", res.NewMessages)
				}
				runs = append(runs, time.Since(start))
			}
			slices.Sort(runs)
			t.Logf("%s, %d messages in 10 folders (full fetch %v): empty run median %v (min %v, max %v)",
				format, res.NewMessages, full.Round(time.Millisecond), runs[len(runs)/2].Round(time.Millisecond),
				runs[0].Round(time.Millisecond), runs[len(runs)-1].Round(time.Millisecond))
			os.RemoveAll(dir)
		}
	}
}

// A run that stopped after committing messages but before its sync state
// caught up (the state is written every few batches, not after each)
// leaves LastUID behind the index. The next run must fetch none of those
// messages again and still copy their flag changes: the flag sync covers
// 1:LastUID only, so the listing's flags cover the rest.
func TestIMAPDovecotLaggingStateResumes(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "lagging")
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			folder := "Lag-" + string(format)
			s.Import(t, user, testbed.GenMessages(9, 30, testbed.GenOptions{Folders: []string{folder}, AttachmentRate: -1}))
			a, trace := imapDovecotAccount(s, user)
			dir := tempArchive(t)
			mustIMAPFetch(t, a, format, dir, Options{})

			arc := imapOpenArchive(t, format, dir)
			st, err := arc.FolderState(folder)
			if err != nil {
				t.Fatal(err)
			}
			if st.LastUID != 30 {
				t.Fatalf("LastUID %d after the first run, want 30", st.LastUID)
			}
			st.LastUID = 10
			if err := arc.SetFolderState(folder, st); err != nil {
				t.Fatal(err)
			}
			arc.Close()

			msgs := s.Fetch(t, user, folder)
			sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
			s.SetFlags(t, user, folder, msgs[4].UID, []string{`\Flagged`})             // below LastUID: CONDSTORE flag sync
			s.SetFlags(t, user, folder, msgs[19].UID, []string{`\Answered`, "Lagged"}) // above it: only the listing sees it

			trace.Reset()
			res := mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 0 || trace.bodyFetches() != 0 {
				t.Errorf("fetched %d messages (%d body fetches) again, want none", res.NewMessages, trace.bodyFetches())
			}
			if res.FlagUpdates != 2 {
				t.Errorf("%d flag updates, want 2", res.FlagUpdates)
			}
			if d := diffSnapshots(imapServerSnapshot(t, s, user), archiveSnapshot(t, format, dir)); d != "" {
				t.Errorf("archive differs from the server:\n%s", d)
			}
			arc = imapOpenArchive(t, format, dir)
			defer arc.Close()
			if st, _ := arc.FolderState(folder); st.LastUID != 30 {
				t.Errorf("LastUID %d after the resumed run, want 30", st.LastUID)
			}
		})
	}
}

// A folder whose new mail fits in one batch is fetched in one round trip:
// EXAMINE, the UID SEARCH and the body FETCH go out together, and the
// bodies list themselves (no separate listing). A bigger folder has the
// bodies of its first messages asked for with its EXAMINE too, along
// with the listing of the rest, which then goes in batches. Either way
// the archive equals the server.
func TestIMAPDovecotSmallFolderInOneRoundTrip(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "oneround")
	s.Import(t, user, testbed.GenMessages(21, 30, testbed.GenOptions{Folders: []string{"Small"}, AttachmentRate: -1}))
	s.Import(t, user, testbed.GenMessages(22, pipelineMessages+20, testbed.GenOptions{Folders: []string{"Big"}, AttachmentRate: -1}))
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			a, trace := imapDovecotAccount(s, user)
			dir := tempArchive(t)
			server := imapServerSnapshot(t, s, user)
			want := len(server["Small"]) + len(server["Big"])
			res := mustIMAPFetch(t, a, format, dir, Options{Include: []string{"Small", "Big"}})
			if res.NewMessages != want {
				t.Errorf("fetched %d messages, want %d", res.NewMessages, want)
			}
			// Small: one body FETCH of the whole new range, no listing.
			// Big: the first batch's bodies and the listing of the rest,
			// both sent with the EXAMINE, then batches by UID.
			if n := trace.count("UID FETCH 1:* (", "BODY.PEEK[]"); n != 1 {
				t.Errorf("%d body FETCHes of 1:*, want 1 (the small folder's):\n%s", n, trace.String())
			}
			var listings []string
			for _, l := range strings.Split(trace.String(), "\n") {
				if strings.Contains(l, " C: ") && strings.Contains(l, "UID FETCH ") && strings.Contains(l, ":* (") && !strings.Contains(l, "BODY") {
					listings = append(listings, l)
				}
			}
			if len(listings) != 1 || strings.Contains(listings[0], "UID FETCH 1:*") {
				t.Errorf("listings %q, want one, of the big folder's UIDs after its first batch", listings)
			}
			// Commands of one connection are traced in the order sent;
			// without the head start the listing came first.
			if next := nextCommand(trace.String(), `EXAMINE "Big"`); !strings.Contains(next, "UID FETCH 1:") || !strings.Contains(next, "BODY.PEEK[]") {
				t.Errorf("the big folder's EXAMINE was followed by %q, want its first bodies:\n%s", next, trace.String())
			}
			if d := diffSnapshots(imapServerSnapshot(t, s, user), archiveSnapshot(t, format, dir)); d != "" {
				t.Errorf("archive differs from the server:\n%s", d)
			}

			// Five new in the small folder: one round trip again, from UID 31.
			s.Import(t, user, testbed.GenMessages(int64(23+len(format)), 5, testbed.GenOptions{Folders: []string{"Small"}, AttachmentRate: -1}))
			trace.Reset()
			res = mustIMAPFetch(t, a, format, dir, Options{Include: []string{"Small", "Big"}})
			if res.NewMessages != 5 {
				t.Errorf("second run fetched %d messages, want 5", res.NewMessages)
			}
			if n := trace.count("UID FETCH ", ":* (", "BODY.PEEK[]"); n != 1 || trace.bodyFetches() != 1 {
				t.Errorf("second run: %d body FETCHes of n:*, %d in all; want 1 and 1:\n%s", n, trace.bodyFetches(), trace.String())
			}
			if d := diffSnapshots(imapServerSnapshot(t, s, user), archiveSnapshot(t, format, dir)); d != "" {
				t.Errorf("archive differs from the server after the second run:\n%s", d)
			}
		})
	}
}

// A first backup dials its extra connections alongside the first one,
// not after the plan; a later run with work for one folder only does not
// open a second connection at all.
func TestIMAPDovecotFirstBackupDialsEarly(t *testing.T) {
	s := testbed.Start(t)
	user := s.AddUser(t, "early")
	s.Import(t, user, testbed.GenMessages(31, 40, testbed.GenOptions{Folders: []string{"INBOX", "Sent"}, AttachmentRate: -1}))
	a, trace := imapDovecotAccount(s, user)
	dir := tempArchive(t)
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{Connections: 2})
	lines := strings.Split(trace.String(), "\n")
	second, list := -1, -1
	for i, l := range lines {
		if second < 0 && strings.Contains(l, "imap[") && strings.Contains(l, "-- connecting") && i > 0 {
			second = i
		}
		if list < 0 && strings.Contains(l, " C: ") && strings.Contains(l, `LIST "" "*"`) {
			list = i
		}
	}
	if second < 0 || list < 0 || second > list {
		t.Errorf("second connection dialled at trace line %d, the folder list asked at %d; want the dial first:\n%s", second, list, trace.String())
	}

	s.Import(t, user, testbed.GenMessages(32, 3, testbed.GenOptions{Folders: []string{"INBOX"}, AttachmentRate: -1}))
	trace.Reset()
	if res := mustIMAPFetch(t, a, archive.Maildir, dir, Options{Connections: 2}); res.NewMessages != 3 {
		t.Errorf("second run fetched %d, want 3", res.NewMessages)
	}
	if n := strings.Count(trace.String(), "-- connecting"); n != 1 {
		t.Errorf("second run opened %d connections for one folder's work, want 1", n)
	}
}

// nextCommand is the command line that the connection which sent the
// command containing cmd sent next ("" if none).
func nextCommand(trace, cmd string) string {
	lines := strings.Split(trace, "\n")
	for i, l := range lines {
		conn, after, ok := strings.Cut(l, " C: ")
		if !ok || !strings.Contains(after, cmd) {
			continue
		}
		for _, m := range lines[i+1:] {
			if c, ok := strings.CutPrefix(m, conn+" C: "); ok {
				return c
			}
		}
	}
	return ""
}
