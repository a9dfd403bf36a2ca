package fetch

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/progress"
)

var memFolders = []string{"Sent", "Drafts", "Work", "Work/2024", "Entwürfe", "Tom & Jerry"}

func TestIMAPFetchIncrementalBothFormats(t *testing.T) {
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			srv := imaptest.Start(t, imaptest.Config{Folders: memFolders,
				Caps: []imap.Cap{imap.CapListExtended, imap.CapListStatus, imap.CapStatusSize, imap.CapNamespace}})
			want := seedMem(t, srv, map[string]int{"INBOX": 120, "Sent": 40, "Drafts": 3, "Work/2024": 25, "Entwürfe": 4, "Tom & Jerry": 2}, 1)
			want["Work"] = []string{}
			a, trace := imapAccount(srv.Host, srv.Port)
			dir := tempArchive(t)

			res := mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 194 || res.Folders != 7 {
				t.Errorf("first run: %d messages in %d folders, want 194 in 7", res.NewMessages, res.Folders)
			}
			if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
				t.Fatalf("archive differs from server:\n%s", d)
			}

			// Nothing new: no bodies, no EXAMINE (LIST-STATUS says all).
			trace.Reset()
			res = mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 0 || trace.bodyFetches() != 0 {
				t.Errorf("second run fetched %d messages, %d body FETCH commands", res.NewMessages, trace.bodyFetches())
			}

			// 10 new messages and 5 flag changes reach the archive, exactly.
			r := rand.New(rand.NewPCG(9, 9))
			for i := 0; i < 10; i++ {
				folder := []string{"INBOX", "Sent", "Work"}[i%3]
				raw := seedMsg(r, 1000+i, folder)
				date := time.Date(2025, 1, 1+i, 8, 0, 0, 0, time.UTC)
				srv.Append(t, imaptest.Msg{Folder: folder, Raw: raw, Date: date, Flags: []imap.Flag{imap.FlagSeen}})
				want[folder] = append(want[folder], msgKey(raw, []string{`\Seen`}, date))
			}
			changed := changeFlags(t, srv, "INBOX", []imap.UID{1, 2, 3, 50, 120}, []imap.Flag{imap.FlagFlagged, imap.FlagAnswered})
			wantUpdates := 0
			for old, nw := range changed {
				if old != nw {
					wantUpdates++
				}
				replaceKey(want["INBOX"], old, nw)
			}
			for _, k := range []string{"INBOX", "Sent", "Work"} {
				sort.Strings(want[k])
			}
			trace.Reset()
			res = mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 10 || res.FlagUpdates != wantUpdates || wantUpdates < 3 {
				t.Errorf("third run: %d new, %d flag updates; want 10 and %d", res.NewMessages, res.FlagUpdates, wantUpdates)
			}
			if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
				t.Fatalf("archive differs from server after changes:\n%s", d)
			}
			// The server is never written to: no STORE, EXPUNGE, SELECT,
			// COPY, APPEND, and bodies only with BODY.PEEK.
			for _, verb := range []string{" STORE ", " EXPUNGE", " SELECT ", " APPEND ", " COPY ", " MOVE ", " CLOSE", "BODY[", "RFC822 ", "RFC822)", "RFC822.TEXT"} {
				if n := trace.count(verb); n != 0 {
					t.Errorf("client sent %d commands with %q", n, verb)
				}
			}
			if trace.bodyFetches() == 0 {
				t.Error("no BODY.PEEK fetch traced")
			}
		})
	}
}

// changeFlags sets flags on some messages through another client (as a
// mail program would) and returns old key -> new key.
func changeFlags(t *testing.T, srv *imaptest.Server, folder string, uids []imap.UID, add []imap.Flag) map[string]string {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imaptest.User, imaptest.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	set := imap.UIDSetNum(uids...)
	before, err := c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: add}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range before {
		raw := m.BodySection[0].Bytes
		old := msgKey(raw, flagsToStrings(m.Flags), m.InternalDate)
		out[old] = msgKey(raw, append(flagsToStrings(m.Flags), flagsToStrings(add)...), m.InternalDate)
	}
	return out
}

func replaceKey(keys []string, old, nw string) {
	for i, k := range keys {
		if k == old {
			keys[i] = nw
			return
		}
	}
}

// TestIMAPFetchLeavesServerUnchanged: unread stays unread (BODY.PEEK),
// nothing expunged, flags as before.
func TestIMAPFetchLeavesServerUnchanged(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Sent"}})
	seedMem(t, srv, map[string]int{"INBOX": 30, "Sent": 5}, 2)
	before := serverFlags(t, srv, "INBOX")
	a, _ := imapAccount(srv.Host, srv.Port)
	mustIMAPFetch(t, a, archive.Maildir, tempArchive(t), Options{})
	after := serverFlags(t, srv, "INBOX")
	if strings.Join(before, ";") != strings.Join(after, ";") {
		t.Fatalf("server flags changed by fetch:\nbefore %v\nafter  %v", before, after)
	}
	unseen := 0
	for _, f := range after {
		if !strings.Contains(f, `\Seen`) {
			unseen++
		}
	}
	if unseen == 0 {
		t.Fatal("test needs unread messages")
	}
}

func serverFlags(t *testing.T, srv *imaptest.Server, folder string) []string {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imaptest.User, imaptest.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		fl := flagsToStrings(m.Flags)
		sort.Strings(fl)
		out = append(out, strings.Join(fl, " "))
	}
	return out
}

func TestIMAPUIDValidityChangeAddsNothingTwice(t *testing.T) {
	for _, format := range imapFormats {
		t.Run(string(format), func(t *testing.T) {
			srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Box"}})
			want := seedMem(t, srv, map[string]int{"Box": 20}, 3)
			want["INBOX"] = []string{}
			a, _ := imapAccount(srv.Host, srv.Port)
			dir := tempArchive(t)
			mustIMAPFetch(t, a, format, dir, Options{})

			// Recreate the folder with the same messages plus two, one of
			// them a second copy of an existing message: a new
			// UIDVALIDITY, different UIDs.
			msgs := memMessages(t, srv, "Box")
			if err := srv.User.Delete("Box"); err != nil {
				t.Fatal(err)
			}
			if err := srv.User.Create("Box", nil); err != nil {
				t.Fatal(err)
			}
			for i := len(msgs) - 1; i >= 0; i-- { // other order, other UIDs
				srv.Append(t, msgs[i])
			}
			srv.Append(t, msgs[3]) // an identical copy: must be kept as a copy
			want["Box"] = append(want["Box"], msgKey(msgs[3].Raw, flagsToStrings(msgs[3].Flags), msgs[3].Date))
			extra := imaptest.Msg{Folder: "Box", Raw: []byte("Subject: new\r\n\r\nnew\r\n"), Date: time.Date(2024, 5, 5, 5, 5, 5, 0, time.UTC)}
			srv.Append(t, extra)
			want["Box"] = append(want["Box"], msgKey(extra.Raw, nil, extra.Date))
			sort.Strings(want["Box"])

			res := mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 2 {
				t.Errorf("rescan added %d messages, want 2", res.NewMessages)
			}
			if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
				t.Fatalf("after UIDVALIDITY change:\n%s", d)
			}
			// And the run after is incremental again.
			res = mustIMAPFetch(t, a, format, dir, Options{})
			if res.NewMessages != 0 {
				t.Errorf("run after rescan fetched %d", res.NewMessages)
			}
		})
	}
}

func memMessages(t *testing.T, srv *imaptest.Server, folder string) []imaptest.Msg {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imaptest.User, imaptest.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []imaptest.Msg
	for _, b := range bufs {
		out = append(out, imaptest.Msg{Folder: folder, Raw: b.BodySection[0].Bytes, Flags: b.Flags, Date: b.InternalDate})
	}
	return out
}

func TestIMAPDryRunWritesNothing(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Sent"}})
	seedMem(t, srv, map[string]int{"INBOX": 7, "Sent": 3}, 4)
	a, trace := imapAccount(srv.Host, srv.Port)
	dir := tempArchive(t)
	arc := imapOpenArchive(t, archive.Mbox, dir)
	before := dirListing(t, dir)
	res, err := IMAP(context.Background(), a, arc, Options{DryRun: true})
	arc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if after := dirListing(t, dir); after != before {
		t.Errorf("dry run changed the archive:\nbefore %s\nafter  %s", before, after)
	}
	plan := map[string]PlannedFolder{}
	for _, p := range res.Planned {
		plan[p.Folder] = p
	}
	if plan["INBOX"].Messages != 7 || plan["Sent"].Messages != 3 || !plan["Sent"].Create || plan["INBOX"].Bytes == 0 {
		t.Errorf("plan: %+v", res.Planned)
	}
	if trace.bodyFetches() != 0 {
		t.Errorf("dry run fetched bodies")
	}
}

func dirListing(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !strings.HasSuffix(p, "/lock") {
			b.WriteString(strings.TrimPrefix(p, dir) + " ")
			if !info.IsDir() {
				b.WriteString(info.ModTime().String())
			}
			b.WriteString("\n")
		}
		return nil
	})
	return b.String()
}

func TestIMAPIncludeExcludeAndAllMail(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Sent", "Work", "Work/A", "Work/B", "[Gmail]", "[Gmail]/All Mail"}})
	seedMem(t, srv, map[string]int{"INBOX": 2, "Sent": 2, "Work/A": 2, "Work/B": 2, "[Gmail]/All Mail": 8}, 5)
	a, _ := imapAccount(srv.Host, srv.Port)
	dir := tempArchive(t)
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{Include: []string{"INBOX", "Work/*", "[Gmail]/*"}, Exclude: []string{"Work/B"}, SkipAllMail: true})
	got := archiveSnapshot(t, archive.Maildir, dir)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "INBOX,Work/A" {
		t.Errorf("folders archived: %v", names)
	}
}

func TestIMAPGoneFolderStaysAndIsReported(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{Folders: []string{"Old"}})
	seedMem(t, srv, map[string]int{"INBOX": 2, "Old": 3}, 6)
	a, _ := imapAccount(srv.Host, srv.Port)
	dir := tempArchive(t)
	mustIMAPFetch(t, a, archive.Mbox, dir, Options{})
	if err := srv.User.Delete("Old"); err != nil {
		t.Fatal(err)
	}
	if err := srv.User.Create("New", nil); err != nil {
		t.Fatal(err)
	}
	res := mustIMAPFetch(t, a, archive.Mbox, dir, Options{})
	if strings.Join(res.GoneFolders, ",") != "Old" || strings.Join(res.NewFolders, ",") != "New" {
		t.Errorf("gone %v, new %v", res.GoneFolders, res.NewFolders)
	}
	snap := archiveSnapshot(t, archive.Mbox, dir)
	if len(snap["Old"]) != 3 {
		t.Errorf("gone folder lost its messages: %d", len(snap["Old"]))
	}
	arc, _ := archive.Open(context.Background(), "mbox:"+dir, archive.Options{ReadOnly: true})
	defer arc.Close()
	f, _ := arc.Folder("Old")
	if !f.State().Gone {
		t.Error("state not marked gone")
	}
}

func TestIMAPExamineFailureIsPartial(t *testing.T) {
	m := imaptest.StartMini(t)
	m.AddFolder("Broken", 7)
	m.AddFolder("Fine", 8)
	m.Add("Fine", []byte("Subject: a\r\n\r\na\r\n"), nil, time.Now())
	m.Add("INBOX", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now())
	m.Set(func(m *imaptest.Mini) { m.ExamineFails = map[string]bool{"Broken": true} })
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	res, err := runIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if !errors.Is(err, mailerr.ErrPartial) {
		t.Fatalf("got %v, want ErrPartial", err)
	}
	if res.NewMessages != 2 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `"Broken"`) {
		t.Errorf("result %+v", res)
	}
}

// Hostile or broken servers, on the scriptable mini server.

func miniFixture(t *testing.T, n int) (*imaptest.Mini, map[string][]string) {
	m := imaptest.StartMini(t)
	want := map[string][]string{}
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < n; i++ {
		raw := seedMsg(r, i, "INBOX")
		flags := []string{`\Seen`}
		if i%3 == 0 {
			flags = nil
		}
		date := time.Date(2020, 1, 1+i%28, 10, 0, 0, 0, time.UTC)
		m.Add("INBOX", raw, flags, date)
		want["INBOX"] = append(want["INBOX"], msgKey(raw, flags, date))
	}
	sort.Strings(want["INBOX"])
	return m, want
}

func TestIMAPServerQuirksStillArchiveEverything(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quirk func(m *imaptest.Mini)
	}{
		{"UID after literal", func(m *imaptest.Mini) { m.UIDAfterLiteral = true }},
		{"body before flags", func(m *imaptest.Mini) { m.BodyFirst = true }},
		{"UID FETCH skips some", func(m *imaptest.Mini) { m.SkipInUIDFetch = map[uint32]bool{3: true, 40: true} }},
		{"RFC822.SIZE lies", func(m *imaptest.Mini) { m.SizeLie = -30 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, want := miniFixture(t, 60)
			m.Set(tc.quirk)
			a, _ := imapAccount(m.Host, m.Port)
			for _, format := range imapFormats {
				dir := tempArchive(t)
				res := mustIMAPFetch(t, a, format, dir, Options{})
				if res.NewMessages != 60 || len(res.Warnings) != 0 {
					t.Errorf("%s: %d messages, warnings %v", format, res.NewMessages, res.Warnings)
				}
				if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
					t.Fatalf("%s:\n%s", format, d)
				}
				if res := mustIMAPFetch(t, a, format, dir, Options{}); res.NewMessages != 0 {
					t.Errorf("%s: rerun fetched %d", format, res.NewMessages)
				}
			}
		})
	}
}

func TestIMAPUndeliveredMessageIsReportedAndRetried(t *testing.T) {
	m, want := miniFixture(t, 20)
	m.Set(func(m *imaptest.Mini) { m.NeverDeliver = map[uint32]bool{5: true} })
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	res, err := runIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if !errors.Is(err, mailerr.ErrPartial) || res.NewMessages != 19 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "UID 5") {
		t.Fatalf("err %v, result %+v", err, res)
	}
	// The server recovers: only the missing message is fetched.
	m.Set(func(m *imaptest.Mini) { m.NeverDeliver = nil })
	sent := m.Sent()
	res = mustIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if res.NewMessages != 1 || m.Sent()-sent != 1 {
		t.Errorf("retry fetched %d (server sent %d bodies), want 1", res.NewMessages, m.Sent()-sent)
	}
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Maildir, dir)); d != "" {
		t.Fatal(d)
	}
}

func TestIMAPMessageLeftOutOfListingIsFetched(t *testing.T) {
	m, want := miniFixture(t, 20)
	m.Set(func(m *imaptest.Mini) { m.HideInListing = map[uint32]bool{7: true, 20: true} })
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	res := mustIMAPFetch(t, a, archive.Mbox, dir, Options{})
	if res.NewMessages != 20 {
		t.Errorf("fetched %d, want 20", res.NewMessages)
	}
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Mbox, dir)); d != "" {
		t.Fatal(d)
	}
}

func TestIMAPExpungeDuringFetch(t *testing.T) {
	m, _ := miniFixture(t, 30)
	m.Set(func(m *imaptest.Mini) { m.ExpungeDuring = map[uint32]bool{10: true, 11: true} })
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	res := mustIMAPFetch(t, a, archive.Mbox, dir, Options{})
	if res.NewMessages != 28 || len(res.Warnings) != 0 {
		t.Errorf("result %+v", res)
	}
}

func TestIMAPSilentServerMidFetch(t *testing.T) {
	m, want := miniFixture(t, 600)
	m.Set(func(m *imaptest.Mini) { m.StallAfter = 400 })
	a, _ := imapAccount(m.Host, m.Port)
	a.Timeout = 300 * time.Millisecond
	dir := tempArchive(t)
	start := time.Now()
	res, err := runIMAPFetch(t, a, archive.Maildir, dir, Options{Retries: -1})
	if !errors.Is(err, mailerr.ErrNetwork) && !errors.Is(err, mailerr.ErrPartial) {
		t.Fatalf("got %v, want a network failure", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 300ms timeout", d)
	}
	// What arrived is durable: at least the completed batches.
	got := archiveSnapshot(t, archive.Maildir, dir)
	if len(got["INBOX"]) < batchMessages || len(got["INBOX"]) > 400 {
		t.Errorf("archived %d messages (result %d) before the stall", len(got["INBOX"]), res.NewMessages)
	}
	// The server wakes up: the rerun completes, nothing doubled.
	m.Set(func(m *imaptest.Mini) { m.StallAfter = 0 })
	a.Timeout = 10 * time.Second
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Maildir, dir)); d != "" {
		t.Fatal(d)
	}
}

func TestIMAPReconnectsAfterStall(t *testing.T) {
	m, want := miniFixture(t, 600)
	m.Set(func(m *imaptest.Mini) { m.StallAfter = 300 })
	a, _ := imapAccount(m.Host, m.Port)
	a.Timeout = 300 * time.Millisecond
	dir := tempArchive(t)
	// The stall lasts for the first session only: a reconnect succeeds.
	go func() {
		for m.Sent() < 300 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		m.Set(func(m *imaptest.Mini) { m.StallAfter = 0 })
	}()
	res := mustIMAPFetch(t, a, archive.Mbox, dir, Options{})
	if res.NewMessages != 600 {
		t.Errorf("fetched %d", res.NewMessages)
	}
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Mbox, dir)); d != "" {
		t.Fatal(d)
	}
}

func TestIMAPCancelKeepsWhatIsDurable(t *testing.T) {
	m, want := miniFixture(t, 800)
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	arc := imapOpenArchive(t, archive.Maildir, dir)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once 500 messages have reached the archive (not merely left
	// the server: on a busy machine they can sit in socket buffers).
	stop := &cancelAfter{Reporter: progress.Discard, at: 500, cancel: cancel}
	_, err := IMAP(ctx, a, arc, Options{Progress: stop})
	arc.Close()
	if !errors.Is(err, mailerr.ErrInterrupted) || !strings.Contains(err.Error(), "what was fetched is kept") {
		t.Fatalf("got %v, want ErrInterrupted saying what is kept", err)
	}
	got := archiveSnapshot(t, archive.Maildir, dir)
	if len(got["INBOX"]) == 0 || len(got["INBOX"]) >= 800 {
		t.Errorf("after cancel the archive holds %d messages", len(got["INBOX"]))
	}
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Maildir, dir)); d != "" {
		t.Fatal(d)
	}
}

func TestIMAPInvalidFolderNameSkippedOthersFetched(t *testing.T) {
	m, want := miniFixture(t, 5)
	m.Set(func(m *imaptest.Mini) { m.ExtraNames = []string{`"Tom & Jerry"`} })
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	res, err := runIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if !errors.Is(err, mailerr.ErrPartial) || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `"Tom & Jerry"`) {
		t.Fatalf("err %v, warnings %q", err, res.Warnings)
	}
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Maildir, dir)); d != "" {
		t.Fatal(d)
	}
}

func TestIMAPHostileFolderNamesStayInside(t *testing.T) {
	m := imaptest.StartMini(t)
	names := []string{"../escape", "/etc/x", `a\b`, "..", ".hidden", "Case", "case", strings.Repeat("n", 300),
		strings.Repeat("long name ", 1000), "cur", "new/tmp", "CON", "a/../../b"}
	for _, n := range names {
		m.AddFolder(n, 1)
		m.Add(n, []byte("Subject: x\r\n\r\n"+n+"\r\n"), nil, time.Now())
	}
	a, _ := imapAccount(m.Host, m.Port)
	parent := t.TempDir()
	dir := filepath.Join(parent, "archive")
	res, err := runIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("something was written next to the archive: %v", entries)
	}
	if _, err := os.Stat("/etc/x/cur"); err == nil {
		t.Fatal("wrote into /etc/x")
	}
	// Every name is data: each folder is archived under its own name.
	if res.NewMessages != len(names) || len(res.Warnings) != 0 {
		t.Errorf("archived %d of %d, warnings %q", res.NewMessages, len(names), res.Warnings)
	}
	snap := archiveSnapshot(t, archive.Maildir, dir)
	for _, n := range names {
		if len(snap[n]) != 1 {
			t.Errorf("folder %.40q holds %d messages", n, len(snap[n]))
		}
	}
}

// Servers report \Recent (Dovecot does); it is session state and must not
// reach the archive, where restore would send it back (a flag Dovecot
// rejects in APPEND).
func TestIMAPRecentIsNotArchived(t *testing.T) {
	m := imaptest.StartMini(t)
	m.Add("INBOX", []byte("Subject: r\r\n\r\nr\r\n"), []string{`\Recent`, `\Seen`}, time.Now())
	a, _ := imapAccount(m.Host, m.Port)
	for _, format := range imapFormats {
		dir := tempArchive(t)
		mustIMAPFetch(t, a, format, dir, Options{})
		arc, err := archive.Open(context.Background(), string(format)+":"+dir, archive.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		metas, _ := arc.Messages("INBOX")
		arc.Close()
		if len(metas) != 1 || strings.Join(metas[0].Flags, " ") != `\Seen` {
			t.Errorf("%s: archived %+v", format, metas)
		}
	}
}

// A server whose literals do not match what it announced: more bytes than
// announced (the excess is parsed as protocol), or an impossible size.
// The run fails with a clear error within the timeout and nothing partial
// is archived; a repaired server is then fetched completely.
func TestIMAPBrokenLiterals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quirk func(m *imaptest.Mini)
	}{
		{"more bytes than announced", func(m *imaptest.Mini) { m.LiteralExtra = "garbage that is not IMAP {}\r\n" }},
		{"impossible size", func(m *imaptest.Mini) { m.AnnounceSize = 5 << 30 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, want := miniFixture(t, 10)
			m.Set(tc.quirk)
			a, _ := imapAccount(m.Host, m.Port)
			a.Timeout = time.Second
			dir := tempArchive(t)
			start := time.Now()
			res, err := runIMAPFetch(t, a, archive.Mbox, dir, Options{Retries: -1})
			if err == nil || (!errors.Is(err, mailerr.ErrNetwork) && !errors.Is(err, mailerr.ErrServer) && !errors.Is(err, mailerr.ErrPartial)) {
				t.Fatalf("got %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			t.Logf("error: %v; warnings %q", err, res.Warnings)
			got := archiveSnapshot(t, archive.Mbox, dir)
			for _, k := range got["INBOX"] {
				if !slices.Contains(want["INBOX"], k) {
					t.Errorf("archived a message the server did not hold: %s", k)
				}
			}
			m.Set(func(m *imaptest.Mini) { m.LiteralExtra, m.AnnounceSize = "", 0 })
			mustIMAPFetch(t, a, archive.Mbox, dir, Options{})
			if d := diffSnapshots(want, archiveSnapshot(t, archive.Mbox, dir)); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// A message claimed by a consumer but not yet appended must not be
// covered by the LastUID that another batch's checkpoint makes durable:
// a kill at that moment would lose it for good (the next run starts after
// LastUID). The hook holds the first message of the second batch between
// its claim and its Append while the first batch commits.
func TestIMAPCheckpointNeverPassesPendingAppend(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{})
	seedMem(t, srv, map[string]int{"INBOX": batchMessages + 20}, 8)
	a, _ := imapAccount(srv.Host, srv.Port)
	dir := tempArchive(t)
	held := imap.UID(batchMessages + 1)
	var durable archive.SyncState
	var inIndex bool
	testHookClaimed = func(uid imap.UID) {
		if uid != held {
			return
		}
		time.Sleep(300 * time.Millisecond) // the first batch completes and commits meanwhile
		ro, err := archive.Open(context.Background(), "maildir:"+dir, archive.Options{ReadOnly: true})
		if err != nil {
			t.Error(err)
			return
		}
		defer ro.Close()
		f, err := ro.Folder("INBOX")
		if err != nil {
			t.Error(err)
			return
		}
		durable = f.State()
		_, inIndex = f.ByUID(uint32(held))
	}
	defer func() { testHookClaimed = nil }()
	mustIMAPFetch(t, a, archive.Maildir, dir, Options{})
	if durable.LastUID == 0 {
		t.Fatal("the first batch did not commit while the message was held: the test proves nothing")
	}
	if durable.LastUID >= uint32(held) && !inIndex {
		t.Fatalf("durable LastUID %d covers UID %d, which is not archived yet", durable.LastUID, held)
	}
}

// cancelAfter cancels a run when its at-th message has been archived.
type cancelAfter struct {
	progress.Reporter
	n      atomic.Int64
	at     int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Message(int64) {
	if c.n.Add(1) == c.at {
		c.cancel()
	}
}
