package restore

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/testbed"
)

// roundTripFolders are the folder kinds of a real account: the inbox,
// every special folder, nested, non-ASCII and awkward names.
var roundTripFolders = []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive",
	"Work/2024", "Lists/golang", "Entwürfe/Ünter", "Tom & Jerry"}

var bedSpecialUse = map[string]string{"Sent": archive.SpecialSent, "Drafts": archive.SpecialDrafts,
	"Trash": archive.SpecialTrash, "Junk": archive.SpecialJunk, "Archive": archive.SpecialArchive}

// seedAccount fills an account with n generated messages plus the cases
// that break naive duplicate checks: identical copies, and one Message-ID
// on two different messages. It returns what the server holds, per folder.
func seedAccount(t *testing.T, srv *testbed.Server, user string, seed int64, n int) map[string][]testbed.Message {
	t.Helper()
	msgs := testbed.GenMessages(seed, n, testbed.GenOptions{Folders: roundTripFolders,
		NoMessageIDRate: 0.05, DeletedRate: 0.02, MaxAttachment: 48 << 10})
	var inbox []testbed.Message
	for _, m := range msgs {
		if m.Folder == "INBOX" {
			inbox = append(inbox, m)
		}
	}
	for i := 0; i < 3; i++ { // identical copies
		msgs = append(msgs, inbox[i])
	}
	twin := inbox[3] // same Message-ID, different bytes
	twin.Raw = []byte(strings.Replace(string(twin.Raw), "\r\n\r\n", "\r\nX-List: footer added\r\n\r\n", 1))
	msgs = append(msgs, twin)
	srv.Import(t, user, msgs)
	return fetchAll(t, srv, user)
}

func fetchAll(t *testing.T, srv *testbed.Server, user string) map[string][]testbed.Message {
	t.Helper()
	out := map[string][]testbed.Message{}
	for _, f := range roundTripFolders {
		out[f] = srv.Fetch(t, user, f)
	}
	return out
}

func flatten(byFolder map[string][]testbed.Message) []testbed.Message {
	var out []testbed.Message
	for _, f := range sortedKeys(byFolder) {
		out = append(out, byFolder[f]...)
	}
	return out
}

func countMessages(byFolder map[string][]testbed.Message) int {
	n := 0
	for _, ms := range byFolder {
		n += len(ms)
	}
	return n
}

// sameContent compares two accounts folder by folder: the multiset of
// message bytes with flags and INTERNALDATE.
func sameContent(t *testing.T, want, got map[string][]testbed.Message) {
	t.Helper()
	for _, f := range sortedKeys(want) {
		w, g := folderDigest(want[f], true), folderDigest(got[f], true)
		if !reflect.DeepEqual(w, g) {
			t.Errorf("folder %s differs: %d messages in the source, %d restored", f, len(w), len(g))
			shown := 0
			gs := map[string]int{}
			for _, l := range g {
				gs[l]++
			}
			for _, l := range w {
				if gs[l] > 0 {
					gs[l]--
				} else if shown < 3 {
					t.Logf("  missing or different: %s", l)
					shown++
				}
			}
		}
	}
}

// Account A → archive (each format) → empty account B: every folder the
// same bytes, flags and dates; the second restore uploads nothing.
func TestRestoreRoundTrip(t *testing.T) {
	srv := testbed.Start(t)
	userA := srv.AddUser(t, "alice")
	source := seedAccount(t, srv, userA, 1, 1100)
	total := countMessages(source)
	if total < 1000 {
		t.Fatalf("seeded only %d messages", total)
	}
	for _, format := range []archive.Format{archive.Maildir, archive.Mbox} {
		t.Run(string(format), func(t *testing.T) {
			_, arch := buildArchive(t, format, flatten(source), bedSpecialUse)
			defer arch.Close()
			userB := srv.AddUser(t, "bob-"+string(format))
			target := bedAccount(srv, userB)
			ledger, err := arch.Ledger(target.String())
			if err != nil {
				t.Fatal(err)
			}
			defer ledger.Close()
			start := time.Now()
			res, err := Restore(context.Background(), arch, ledger, target, Options{})
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			t.Logf("%s: restored %d messages (%d MB) in %v, multiappend=%v", format, res.Uploaded, res.Bytes>>20,
				time.Since(start).Round(time.Millisecond), res.MultiAppend)
			if res.Uploaded != total || res.Skipped != 0 || res.Failed != 0 {
				t.Errorf("uploaded %d skipped %d failed %d, want %d 0 0", res.Uploaded, res.Skipped, res.Failed, total)
			}
			sameContent(t, source, fetchAll(t, srv, userB))

			res, err = Restore(context.Background(), arch, ledger, target, Options{})
			if err != nil || res.Uploaded != 0 || res.Skipped != total {
				t.Errorf("second restore: err %v, uploaded %d, skipped %d (want 0, %d)", err, res.Uploaded, res.Skipped, total)
			}
			// Without the ledger the target alone says what is there.
			res, err = Restore(context.Background(), arch, nil, target, Options{NoMultiAppend: true})
			if err != nil || res.Uploaded != 0 || res.Skipped != total {
				t.Errorf("restore without ledger: err %v, uploaded %d, skipped %d (want 0, %d)", err, res.Uploaded, res.Skipped, total)
			}
			sameContent(t, source, fetchAll(t, srv, userB))
		})
	}
}

// The target's Sent folder is "Sent Items": the archive's Sent lands there
// and no folder "Sent" is created.
func TestRestoreIntoSentItems(t *testing.T) {
	srv := testbed.StartWith(t, testbed.Options{SentName: "Sent Items"})
	userA := srv.AddUser(t, "exch")
	msgs := testbed.GenMessages(7, 60, testbed.GenOptions{Folders: []string{"INBOX", "Sent", "Sent/2019"}})
	_, arch := buildArchive(t, archive.Maildir, msgs, bedSpecialUse)
	defer arch.Close()
	res, err := Restore(context.Background(), arch, nil, bedAccount(srv, userA), Options{NoMultiAppend: true})
	if err != nil {
		t.Fatal(err)
	}
	folders := srv.Folders(t, userA)
	for _, f := range folders {
		if f == "Sent" {
			t.Errorf("a folder Sent was created next to Sent Items: %q", folders)
		}
	}
	want := map[string]int{}
	for _, m := range msgs {
		want[strings.Replace(m.Folder, "Sent", "Sent Items", 1)]++
	}
	for f, n := range want {
		if got, _, _ := srv.Status(t, userA, f); got != n {
			t.Errorf("%s holds %d messages, want %d (plan %+v)", f, got, n, res.Plan)
		}
	}
}

// A target that already holds some of the messages (with other flags and
// dates, as a second mail client left them) gets no duplicates; copies in
// the archive are still all uploaded.
func TestRestoreTargetAlreadyHoldsSome(t *testing.T) {
	for _, multi := range []bool{true, false} {
		t.Run(fmt.Sprintf("multiappend=%v", multi), func(t *testing.T) { testTargetAlreadyHoldsSome(t, !multi) })
	}
}

func testTargetAlreadyHoldsSome(t *testing.T, noMulti bool) {
	srv := testbed.Start(t)
	userA := srv.AddUser(t, "src")
	source := seedAccount(t, srv, userA, 3, 300)
	userB := srv.AddUser(t, "half")
	var already []testbed.Message
	for _, f := range sortedKeys(source) {
		for i, m := range source[f] {
			if i%3 == 0 {
				m.Flags = nil
				m.Date = m.Date.Add(time.Hour)
				already = append(already, m)
			}
		}
	}
	srv.Import(t, userB, already)
	_, arch := buildArchive(t, archive.Mbox, flatten(source), bedSpecialUse)
	defer arch.Close()
	res, err := Restore(context.Background(), arch, nil, bedAccount(srv, userB), Options{NoMultiAppend: noMulti})
	if err != nil {
		t.Fatal(err)
	}
	if res.MultiAppend == noMulti {
		t.Errorf("MultiAppend = %v", res.MultiAppend)
	}
	if res.Skipped != len(already) || res.Uploaded != countMessages(source)-len(already) {
		t.Errorf("uploaded %d skipped %d, want %d %d", res.Uploaded, res.Skipped, countMessages(source)-len(already), len(already))
	}
	got := fetchAll(t, srv, userB)
	for _, f := range sortedKeys(source) {
		w, g := folderDigest(source[f], false), folderDigest(got[f], false)
		ws, gs := shaMultiset(source[f]), shaMultiset(got[f])
		if !reflect.DeepEqual(ws, gs) {
			t.Errorf("%s: %d messages, want %d (each exactly once)", f, len(g), len(w))
		}
	}
}

func shaMultiset(msgs []testbed.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[sum(m.Raw)]++
	}
	return out
}
