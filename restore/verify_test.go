package restore

import (
	"context"
	"errors"
	"testing"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// verify is clean right after a restore, and names the folder and the
// message when one message is removed on the server, or one is added.
func TestVerifyAfterRestore(t *testing.T) {
	srv := testbed.Start(t)
	userA := srv.AddUser(t, "va")
	source := seedAccount(t, srv, userA, 11, 200)
	_, arch := buildArchive(t, archive.Maildir, flatten(source), bedSpecialUse)
	defer arch.Close()
	userB := srv.AddUser(t, "vb")
	target := bedAccount(srv, userB)
	if _, err := Restore(context.Background(), arch, nil, target, Options{}); err != nil {
		t.Fatal(err)
	}
	diffs, err := Verify(context.Background(), arch, target, Options{})
	if err != nil {
		t.Fatalf("verify after restore: %v", err)
	}
	matched := 0
	for _, d := range diffs {
		matched += d.Matched
		if d.FlagsDiffer != 0 {
			t.Errorf("%s: %d messages with other flags", d.Folder, d.FlagsDiffer)
		}
	}
	if matched != countMessages(source) {
		t.Errorf("verify matched %d messages, want %d", matched, countMessages(source))
	}

	// One message removed on the server: verify says which.
	victim := srv.Fetch(t, userB, "Work/2024")[0]
	srv.Expunge(t, userB, "Work/2024", victim.UID)
	srv.Save(t, userB, "Lists/golang", []byte("Subject: only on the server\r\n\r\nhi\r\n"), nil, victim.Date)
	diffs, err = Verify(context.Background(), arch, target, Options{})
	if !errors.Is(err, mailerr.ErrMismatch) {
		t.Fatalf("verify after removing a message: err = %v, want ErrMismatch", err)
	}
	for _, d := range diffs {
		switch d.Folder {
		case "Work/2024":
			if len(d.MissingOnServer) != 1 || len(d.MissingInArchive) != 0 || d.MissingOnServer[0].SHA256 != sum(victim.Raw) {
				t.Errorf("Work/2024: %+v", d)
			}
		case "Lists/golang":
			if len(d.MissingOnServer) != 0 || len(d.MissingInArchive) != 1 {
				t.Errorf("Lists/golang: %+v", d)
			}
		default:
			if d.Differs() {
				t.Errorf("%s differs: %+v", d.Folder, d)
			}
		}
	}
}
