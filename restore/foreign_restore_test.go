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

func muttMsg(id, extra, body string) string {
	return "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: " + id +
		"\r\nMessage-ID: <" + id + "@example.org>\r\nDate: Mon, 2 Jan 2023 10:00:00 +0100\r\n" + extra + "\r\n" + body
}

// A mutt mbox and a Thunderbird folder tree restore with the flags their
// status headers carry; a second run uploads nothing.
func TestRestoreMailClientTrees(t *testing.T) {
	srv := testbed.Start(t)
	user := srv.AddUser(t, "mutt")
	dir := t.TempDir()
	box := "From alice@example.org Mon Jan  2 10:00:00 2023\n" + muttMsg("m-new", "Status: O\r\n", "new\r\n") + "\n" +
		"From alice@example.org Mon Jan  2 11:00:00 2023\n" + muttMsg("m-seen", "Status: RO\r\n", "seen\r\n") + "\n" +
		"From alice@example.org Mon Jan  2 12:00:00 2023\n" + muttMsg("m-ans", "Status: RO\r\nX-Status: AF\r\n", "answered flagged\r\n") + "\n" +
		"From alice@example.org Mon Jan  2 13:00:00 2023\n" + muttMsg("m-draft", "X-Status: T\r\n", "draft\r\n") + "\n"
	writeTestFile(t, filepath.Join(dir, "mutt", "inbox"), box)
	tb := "From - Mon Jan  2 09:00:00 2023\n" + "X-Mozilla-Status: 0005\r\nX-Mozilla-Status2: 00000000\r\n" + muttMsg("t-sent", "", "sent, flagged\r\n") + "\n" +
		"From - Mon Jan  2 09:30:00 2023\n" + "X-Mozilla-Status: 0003\r\n" + muttMsg("t-replied", "", "replied\r\n") + "\n"
	writeTestFile(t, filepath.Join(dir, "mutt", "sent-mail"), tb)

	src, err := archive.OpenForeign(filepath.Join(dir, "mutt"))
	if err != nil {
		t.Fatal(err)
	}
	a := bedAccount(srv, user)
	res, err := Restore(context.Background(), src, nil, a, Options{LedgerPath: filepath.Join(dir, "ledger.jsonl")})
	if err != nil {
		t.Fatalf("Restore: %v (%+v)", err, res)
	}
	if res.Uploaded != 6 || res.Skipped != 0 {
		t.Errorf("uploaded %d skipped %d, want 6 and 0", res.Uploaded, res.Skipped)
	}
	want := map[string][]string{
		"m-new": nil, "m-seen": {`\Seen`}, "m-ans": {`\Answered`, `\Flagged`, `\Seen`}, "m-draft": {`\Draft`},
		"t-sent": {`\Flagged`, `\Seen`}, "t-replied": {`\Answered`, `\Seen`},
	}
	got := map[string][]string{}
	for _, folder := range []string{"INBOX", "Sent"} {
		for _, m := range srv.Fetch(t, user, folder) {
			subj := strings.TrimPrefix(strings.SplitN(strings.SplitN(string(m.Raw), "Subject: ", 2)[1], "\r\n", 2)[0], "")
			got[subj] = m.Flags
			if strings.Contains(string(m.Raw), "X-Mozilla-Status") || strings.Contains(string(m.Raw), "Status: ") {
				t.Errorf("%s: client status header uploaded", subj)
			}
			if strings.HasPrefix(subj, "t-") != (folder == "Sent") {
				t.Errorf("%s landed in %s", subj, folder)
			}
		}
	}
	for id, flags := range want {
		if !reflect.DeepEqual(testbed.NormalizeFlags(got[id]), testbed.NormalizeFlags(flags)) {
			t.Errorf("%s: flags %q, want %q", id, got[id], flags)
		}
	}

	src2, _ := archive.OpenForeign(filepath.Join(dir, "mutt"))
	res, err = Restore(context.Background(), src2, nil, a, Options{LedgerPath: filepath.Join(dir, "ledger.jsonl")})
	if err != nil || res.Uploaded != 0 || res.Skipped != 6 {
		t.Errorf("second restore: %v, uploaded %d skipped %d", err, res.Uploaded, res.Skipped)
	}
}
