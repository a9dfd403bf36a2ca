package restore

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/testbed"
)

// A dry run reports the plan — folders to create, messages to upload,
// duplicates skipped — and changes nothing on the target.
func TestRestoreDryRun(t *testing.T) {
	srv := testbed.Start(t)
	user := srv.AddUser(t, "dry")
	msgs := testbed.GenMessages(21, 40, testbed.GenOptions{Folders: []string{"INBOX", "Sent", "Projects/New"}})
	var inboxHalf []testbed.Message
	wantUpload := map[string]int{}
	for _, m := range msgs {
		wantUpload[m.Folder]++
		if m.Folder == "INBOX" && len(inboxHalf) < 5 {
			inboxHalf = append(inboxHalf, m)
			wantUpload["INBOX"]--
		}
	}
	srv.Import(t, user, inboxHalf)
	_, arch := buildArchive(t, archive.Maildir, msgs, bedSpecialUse)
	defer arch.Close()
	before := srv.Folders(t, user)
	res, err := Restore(context.Background(), arch, nil, bedAccount(srv, user), Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(srv.Folders(t, user), before) {
		t.Errorf("dry run changed the folders: %q → %q", before, srv.Folders(t, user))
	}
	if n, _, _ := srv.Status(t, user, "INBOX"); n != len(inboxHalf) {
		t.Errorf("dry run changed INBOX: %d messages", n)
	}
	if res.Created != 1 || res.Skipped != len(inboxHalf) || !res.DryRun {
		t.Errorf("created %d skipped %d, want 1 and %d", res.Created, res.Skipped, len(inboxHalf))
	}
	for _, p := range res.Plan {
		if p.Upload != wantUpload[p.Folder] || p.Create != (p.Folder == "Projects/New") {
			t.Errorf("plan %+v, want %d uploads", p, wantUpload[p.Folder])
		}
	}
}

// A POP3 history (a mailark archive of the inbox) plus the mail client's
// local Sent mbox go to an IMAP account that already holds some of those
// messages: afterwards everything is there exactly once, the local Sent in
// the target's Sent, and verify finds nothing of the sources missing.
func TestRestorePOPHistoryWithLocalSent(t *testing.T) {
	srv := testbed.Start(t)
	popUser := srv.AddUser(t, "pop")
	inbox := testbed.GenMessages(31, 120, testbed.GenOptions{NoMessageIDRate: 0.1})
	srv.Import(t, popUser, inbox)
	served := srv.Fetch(t, popUser, "INBOX")
	_, arch := buildArchive(t, archive.Mbox, served, nil)
	defer arch.Close()

	sent := testbed.GenMessages(32, 30, testbed.GenOptions{Folders: []string{"Sent"}})
	var mbox strings.Builder
	for i, m := range sent {
		status := "X-Mozilla-Status: 0001\r\n"
		if i%3 == 0 {
			status = "X-Mozilla-Status: 0003\r\n"
		}
		raw := string(m.Raw)
		if i%2 == 1 { // a client that stored the message with LF line ends
			raw, status = strings.ReplaceAll(raw, "\r\n", "\n"), strings.ReplaceAll(status, "\r\n", "\n")
		}
		mbox.WriteString("From - " + m.Date.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n" + status + raw + "\n")
	}
	local := filepath.Join(t.TempDir(), "Local Folders")
	writeTestFile(t, filepath.Join(local, "Sent"), mbox.String())

	target := srv.AddUser(t, "imap")
	var already []testbed.Message
	for i := 0; i < len(served); i += 4 {
		already = append(already, served[i]) // left on the old server, fetched by both
	}
	for i := 0; i < len(sent); i += 5 {
		already = append(already, sent[i])
	}
	srv.Import(t, target, already)
	a := bedAccount(srv, target)

	tree, err := archive.OpenForeign(local)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	ledgerPath, err := LedgerPathFor(local, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []archive.Reader{arch, tree} {
		opt := Options{}
		if src == tree {
			opt.LedgerPath = ledgerPath
		}
		if res, err := Restore(context.Background(), src, nil, a, opt); err != nil {
			t.Fatalf("restore: %v (%+v)", err, res)
		}
	}
	wantInbox := shaMultiset(served)
	if got := shaMultiset(srv.Fetch(t, target, "INBOX")); !reflect.DeepEqual(got, wantInbox) {
		t.Errorf("INBOX: %d distinct messages, want %d, each once", len(got), len(wantInbox))
	}
	wantSent := map[string]int{}
	for _, m := range sent {
		wantSent[sum(m.Raw)]++
	}
	gotSent := srv.Fetch(t, target, "Sent")
	if got := shaMultiset(gotSent); !reflect.DeepEqual(got, wantSent) {
		t.Errorf("Sent: %d messages, want %d, each once", len(gotSent), len(sent))
	}
	for _, src := range []archive.Reader{arch, tree} {
		diffs, _ := Verify(context.Background(), src, a, Options{})
		for _, d := range diffs {
			if len(d.MissingOnServer) > 0 {
				t.Errorf("verify: %s misses %d messages of the source", d.Folder, len(d.MissingOnServer))
			}
		}
	}
}
