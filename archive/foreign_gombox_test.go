package archive

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-mbox"
)

// TestForeignReadsGoMboxFiles checks the foreign mbox reader against the
// go-mbox library, which writes mboxo the way mail clients do: every
// message the library writes is found, with the body lines the library
// quoted ("From ...") given back unquoted.
func TestForeignReadsGoMboxFiles(t *testing.T) {
	msgs := []string{
		"From: a@example.org\r\nSubject: one\r\nMessage-ID: <1@example.org>\r\n\r\nhello\r\n",
		"From: b@example.org\r\nSubject: two\r\nMessage-ID: <2@example.org>\r\n\r\nFrom the top: a line mbox must quote\r\nlast line\r\n",
		"From: c@example.org\r\nSubject: three\r\n\r\n\r\nbody after an empty line\r\n",
	}
	var file bytes.Buffer
	w := mbox.NewWriter(&file)
	for i, m := range msgs {
		mw, err := w.CreateMessage("sender@example.org", time.Date(2024, 3, i+1, 10, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(mw, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "Sent")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	r, err := OpenForeign(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	folders, err := r.Folders()
	if err != nil || len(folders) != 1 {
		t.Fatalf("folders %v, %v", folders, err)
	}
	metas, err := r.Messages(folders[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != len(msgs) {
		t.Fatalf("read %d messages, go-mbox wrote %d", len(metas), len(msgs))
	}
	for i, m := range metas {
		rc, err := r.Open(folders[0].Name, m.Key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// go-mbox stores LF line ends; compare line by line.
		want := strings.ReplaceAll(msgs[i], "\r\n", "\n")
		if strings.TrimRight(string(got), "\n") != strings.TrimRight(want, "\n") {
			t.Errorf("message %d:\n got %q\nwant %q", i, got, want)
		}
		// The messages have no Date header: the From_ line gives the date.
		if want := time.Date(2024, 3, i+1, 10, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
			t.Errorf("message %d: date %v, want %v", i, m.Date, want)
		}
	}
}
