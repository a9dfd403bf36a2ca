package archive

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/testbed"
)

// dovecotMailLocation is the mail_location that opens an archive directly
// (documented in docs/archive.md).
func dovecotMailLocation(f Format, root string) string {
	if f == Maildir {
		return "maildir:" + root + ":LAYOUT=fs:INBOX=" + root + "/INBOX:UTF-8"
	}
	return "mbox:" + root + ":INBOX=" + root + "/INBOX:UTF-8"
}

type dovecotMessage struct {
	MessageID string `json:"hdr.message-id"`
	Flags     string `json:"flags"`
	Received  string `json:"date.received.unixtime"`
	Text      string `json:"text"`
}

// TestDovecotReadsArchive points a real Dovecot at archives mailark wrote
// and checks that it sees the same folders, and in each the same messages
// with the same flags and INTERNALDATEs (and, for maildir, the same bytes).
func TestDovecotReadsArchive(t *testing.T) {
	s := testbed.Start(t)
	u := s.AddUser(t, "archive")
	folders := []string{"INBOX", "Sent", "Archive", "Archive/2024", "Entw\u00fcrfe", "a.b", "Re: [list] x", "Projects/2025/Q1"}
	eachFormat(t, func(t *testing.T, f Format) {
		src := t.TempDir()
		a := mustOpen(t, f, src, Options{})
		type want struct {
			flags []string
			date  time.Time
			msg   string
		}
		wants := map[string]map[string]want{} // path -> Message-ID -> want
		for fi, name := range folders {
			fo := mustCreate(t, a, name)
			path := fo.Info().Path
			wants[path] = map[string]want{}
			for i := range 4 {
				mid := fmt.Sprintf("<%d.%d@dovecot.test>", fi, i)
				msg := fmt.Sprintf("Message-ID: %s\r\nSubject: %s %d\r\n\r\nbody %d\r\nFrom the body\r\n>From quoted\r\n", mid, name, i, i)
				flags := [][]string{nil, {`\Seen`}, {`\Seen`, `\Answered`, `\Flagged`, "$Forwarded", "Junk"}, {`\Draft`, `\Deleted`, "$Label1"}}[i]
				date := time.Date(2022, 1+time.Month(i), 2+fi, 10, 11, 12, 0, time.FixedZone("", (i-2)*3600))
				mustAppend(t, fo, []byte(msg), AppendInfo{Flags: flags, Date: date})
				wants[path][mid] = want{normalizeFlags(flags), date, msg}
			}
			mustCommit(t, fo)
			// A flag change after the commit must reach Dovecot too.
			mid := fmt.Sprintf("<%d.0@dovecot.test>", fi)
			if err := fo.SetFlags(fo.ByMessageID(mid)[0].Key, []string{`\Seen`, "Later"}); err != nil {
				t.Fatal(err)
			}
			w := wants[path][mid]
			w.flags = []string{"Later", `\Seen`}
			wants[path][mid] = w
			mustCommit(t, fo)
		}
		infos, _ := a.Folders()
		a.Close()

		// Dovecot writes its own files into the tree it serves: give it a
		// copy, owned by the test bed's mail user.
		root := s.CopyForDovecot(t, src)
		loc := dovecotMailLocation(f, root)

		out, err := s.RunDoveadm(nil, "-o", "mail_location="+loc, "mailbox", "list", "-u", u)
		if err != nil {
			t.Fatalf("doveadm mailbox list: %v", err)
		}
		listed := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			listed[l] = true
		}
		for _, info := range infos {
			dovecotName := info.Path
			if f == Mbox && info.NoSelect {
				dovecotName += ".sbd" // Dovecot sees the Thunderbird directory
			}
			if !listed[dovecotName] {
				t.Errorf("Dovecot does not list %q (archive folder %q); it lists %v", dovecotName, info.Name, keysOf(listed))
			}
		}

		for path, byID := range wants {
			out, err := s.RunDoveadm(nil, "-o", "mail_location="+loc, "-f", "json", "fetch", "-u", u,
				"hdr.message-id flags date.received.unixtime text", "mailbox", path, "all")
			if err != nil {
				t.Fatalf("doveadm fetch %q: %v", path, err)
			}
			var got []dovecotMessage
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("doveadm fetch %q output %q: %v", path, out, err)
			}
			if len(got) != len(byID) {
				t.Errorf("%s: Dovecot sees %d messages, the archive has %d", path, len(got), len(byID))
			}
			for _, m := range got {
				w, ok := byID[m.MessageID]
				if !ok {
					t.Errorf("%s: Dovecot shows an unknown message %q", path, m.MessageID)
					continue
				}
				var flags []string
				for _, fl := range strings.Fields(m.Flags) {
					if fl != `\Recent` {
						flags = append(flags, fl)
					}
				}
				slices.Sort(flags)
				if !slices.Equal(flags, w.flags) {
					t.Errorf("%s %s: Dovecot flags %v, archive %v", path, m.MessageID, flags, w.flags)
				}
				if sec, _ := strconv.ParseInt(m.Received, 10, 64); sec != w.date.Unix() {
					t.Errorf("%s %s: Dovecot INTERNALDATE %s, archive %s", path, m.MessageID, m.Received, w.date)
				}
				// Dovecot serves maildir files as they are; its mbox reader
				// rewrites header line endings and does not unquote >From.
				if f == Maildir && m.Text != w.msg {
					t.Errorf("%s %s: Dovecot text %q, archive %q", path, m.MessageID, m.Text, w.msg)
				}
			}
		}
	})
}
