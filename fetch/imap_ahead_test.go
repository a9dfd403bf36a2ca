package fetch

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/mailerr"
)

// Opening the next folder before the last answers of the one before
// (folderSync.allSent), on the scriptable server.

// aheadFixture is a Mini server with n messages in each of folders.
func aheadFixture(t *testing.T, folders []string, n int) (*imaptest.Mini, map[string][]string) {
	m := imaptest.StartMini(t)
	want := map[string][]string{}
	r := rand.New(rand.NewPCG(11, 11))
	for fi, name := range folders {
		if name != "INBOX" {
			m.AddFolder(name, uint32(100+fi))
		}
		for i := range n {
			raw := seedMsg(r, i, name)
			date := time.Date(2021, 3, 1+i%28, 9, 0, 0, 0, time.UTC)
			m.Add(name, raw, []string{`\Seen`}, date)
			want[name] = append(want[name], msgKey(raw, []string{`\Seen`}, date))
		}
		sort.Strings(want[name])
	}
	return m, want
}

// examines counts the EXAMINE commands the server received per folder.
func examines(m *imaptest.Mini) map[string]int {
	out := map[string]int{}
	m.Set(func(m *imaptest.Mini) {
		for _, c := range m.Commands {
			f := strings.Fields(c)
			if len(f) >= 3 && strings.EqualFold(f[1], "EXAMINE") {
				out[strings.Trim(f[2], `"`)]++
			}
		}
	})
	return out
}

// The server holds back every FETCH and SEARCH completion until the next
// EXAMINE (or a second of silence). A client that waits for a folder's
// completions before it opens the next waits out the second at every
// folder; one that opens the next folder first waits only at the last.
func TestIMAPOpensNextFolderBeforeLastAnswers(t *testing.T) {
	folders := []string{"INBOX", "A", "B", "C"}
	m, want := aheadFixture(t, folders, 12)
	m.Set(func(m *imaptest.Mini) { m.HoldCompletions, m.StatusSize = time.Second, true })
	a, _ := imapAccount(m.Host, m.Port)
	for _, format := range imapFormats {
		dir := tempArchive(t)
		before := 0
		m.Set(func(m *imaptest.Mini) { before = m.HoldsTimedOut })
		res := mustIMAPFetch(t, a, format, dir, Options{Connections: 1})
		if res.NewMessages != 12*len(folders) || len(res.Warnings) != 0 {
			t.Errorf("%s: %d messages, warnings %v", format, res.NewMessages, res.Warnings)
		}
		if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
			t.Fatalf("%s:\n%s", format, d)
		}
		var waits int
		m.Set(func(m *imaptest.Mini) { waits = m.HoldsTimedOut - before })
		if waits != 1 {
			t.Errorf("%s: the client waited for held completions %d times in %d folders, want once (the last folder)", format, waits, len(folders))
		}
	}
}

// A folder missing a message after the next folder was opened behind it
// is visited again after that one, and nothing is lost or doubled.
func TestIMAPFolderVisitedAgainWhenMessageMissing(t *testing.T) {
	folders := []string{"INBOX", "A", "B"}
	m, want := aheadFixture(t, folders, 15)
	a, _ := imapAccount(m.Host, m.Port)
	// UID FETCH never delivers UID 4 (in every folder); FETCH by
	// sequence number does. With STATUS=SIZE, every folder's bodies are
	// asked for with its EXAMINE; without, after its listing.
	for _, tc := range []struct {
		format     archive.Format
		statusSize bool
	}{{archive.Maildir, false}, {archive.Mbox, false}, {archive.Maildir, true}, {archive.Mbox, true}} {
		format := tc.format
		m.Set(func(m *imaptest.Mini) { m.SkipInUIDFetch, m.StatusSize = map[uint32]bool{4: true}, tc.statusSize })
		dir := tempArchive(t)
		m.Set(func(m *imaptest.Mini) { m.Commands = nil })
		res := mustIMAPFetch(t, a, format, dir, Options{Connections: 1})
		if res.NewMessages != 15*len(folders) || len(res.Warnings) != 0 {
			t.Errorf("%s: %d messages, warnings %v", format, res.NewMessages, res.Warnings)
		}
		if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
			t.Fatalf("%s:\n%s", format, d)
		}
		// Every folder but the last had the next one opened behind it,
		// so it needed a second visit for UID 4.
		ex := examines(m)
		twice := 0
		for _, f := range folders {
			if ex[f] == 2 {
				twice++
			}
		}
		if twice != len(folders)-1 {
			t.Errorf("%s, STATUS=SIZE %v: EXAMINEs per folder %v: want %d folders visited twice", format, tc.statusSize, ex, len(folders)-1)
		}
		if res := mustIMAPFetch(t, a, format, dir, Options{Connections: 1}); res.NewMessages != 0 {
			t.Errorf("%s: rerun fetched %d", format, res.NewMessages)
		}
	}
}

// A message the server never delivers is reported once per folder, even
// when the folder was visited twice, and fetched by the next run.
func TestIMAPUndeliveredAfterRevisitReportedOnce(t *testing.T) {
	folders := []string{"INBOX", "A", "B"}
	m, want := aheadFixture(t, folders, 10)
	m.Set(func(m *imaptest.Mini) { m.NeverDeliver = map[uint32]bool{6: true} })
	a, _ := imapAccount(m.Host, m.Port)
	dir := tempArchive(t)
	res, err := runIMAPFetch(t, a, archive.Mbox, dir, Options{Connections: 1})
	if !errors.Is(err, mailerr.ErrPartial) || res.NewMessages != 9*len(folders) || len(res.Warnings) != len(folders) {
		t.Fatalf("err %v, %d messages, warnings %v", err, res.NewMessages, res.Warnings)
	}
	for _, w := range res.Warnings {
		if !strings.Contains(w, "UID 6") {
			t.Errorf("warning %q does not name UID 6", w)
		}
	}
	m.Set(func(m *imaptest.Mini) { m.NeverDeliver = nil })
	sent := m.Sent()
	res = mustIMAPFetch(t, a, archive.Mbox, dir, Options{Connections: 1})
	if res.NewMessages != len(folders) || m.Sent()-sent != len(folders) {
		t.Errorf("retry fetched %d (server sent %d bodies), want %d", res.NewMessages, m.Sent()-sent, len(folders))
	}
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Mbox, dir)); d != "" {
		t.Fatal(d)
	}
}

// The connection dies while a folder is read and the next one is opened
// behind it: the folder resumes on a new connection, and the next one is
// opened again there, not read from the dead one.
func TestIMAPReconnectWithNextFolderOpened(t *testing.T) {
	folders := []string{"INBOX", "A", "B"}
	m, want := aheadFixture(t, folders, 60)
	m.Set(func(m *imaptest.Mini) { m.StallAfter, m.StatusSize = 70, true })
	a, _ := imapAccount(m.Host, m.Port)
	a.Timeout = 300 * time.Millisecond
	// The stall lasts for the first session only.
	go func() {
		for m.Sent() < 70 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		m.Set(func(m *imaptest.Mini) { m.StallAfter = 0 })
	}()
	dir := tempArchive(t)
	res := mustIMAPFetch(t, a, archive.Maildir, dir, Options{Connections: 1})
	if res.NewMessages != 60*len(folders) || len(res.Warnings) != 0 {
		t.Errorf("%d messages, warnings %v", res.NewMessages, res.Warnings)
	}
	if d := diffSnapshots(want, archiveSnapshot(t, archive.Maildir, dir)); d != "" {
		t.Fatal(d)
	}
	// One reconnect: the folder opened on the dead connection is opened
	// anew on the new one, not tried there first (which fails, and costs
	// another connection after a back-off).
	if n := m.Sessions(); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}
