package restore

import (
	"context"
	"errors"
	"testing"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// A message the server refuses (here: a keyword longer than this Dovecot
// allows) fails alone: the MULTIAPPEND batch it was in is sent again
// message by message, the others arrive, the run reports a partial
// failure, and a rerun tries only what is missing.
func TestRestoreRefusedMessageFailsAlone(t *testing.T) {
	srv := testbed.StartWith(t, testbed.Options{ExtraConfig: "mail_max_keyword_length = 8"})
	user := srv.AddUser(t, "refuse")
	msgs := testbed.GenMessages(41, 30, testbed.GenOptions{Keywords: []string{}})
	for i := range msgs {
		msgs[i].Folder, msgs[i].Flags = "INBOX", nil
	}
	msgs[7].Flags = []string{"VeryLongKeyword"}
	_, arch := buildArchive(t, archive.Maildir, msgs, nil)
	defer arch.Close()
	for _, multi := range []bool{true, false} {
		res, err := Restore(context.Background(), arch, nil, bedAccount(srv, user), Options{NoMultiAppend: !multi})
		if !errors.Is(err, mailerr.ErrPartial) {
			t.Fatalf("multiappend=%v: err = %v, want a partial failure", multi, err)
		}
		if res.Failed != 1 || len(res.Warnings) == 0 {
			t.Errorf("multiappend=%v: failed %d warnings %q", multi, res.Failed, res.Warnings)
		}
		if n, _, _ := srv.Status(t, user, "INBOX"); n != len(msgs)-1 {
			t.Errorf("multiappend=%v: INBOX holds %d, want %d", multi, n, len(msgs)-1)
		}
	}
	if got := srv.Folders(t, user); len(got) == 0 {
		t.Fatal("no folders")
	}
}
