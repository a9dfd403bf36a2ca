package imapconn

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/testkit"
)

func TestArchiveNameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		server  string
		delim   rune
		prefix  string
		archive string
	}{
		{"INBOX", '/', "", "INBOX"},
		{"inbox", '.', "", "INBOX"},
		{"Work/2024", '/', "", "Work/2024"},
		{"Work.2024", '.', "", "Work/2024"},
		{"INBOX.Sent", '.', "INBOX.", "Sent"},
		{"INBOX.Work.2024", '.', "INBOX.", "Work/2024"},
		{"a/b.c", '.', "", "a\u2215b/c"}, // "/" inside a component on a "." server
		{"Entwürfe", '/', "", "Entwürfe"},
		{"flat", 0, "", "flat"},
		{"INBOX/Sub", '/', "", "INBOX/Sub"},
	} {
		if got := ArchiveName(tc.server, tc.delim, tc.prefix); got != tc.archive {
			t.Errorf("ArchiveName(%q, %q, %q) = %q, want %q", tc.server, tc.delim, tc.prefix, got, tc.archive)
		}
		back := ServerName(tc.archive, tc.delim, tc.prefix)
		want := tc.server
		if want == "inbox" {
			want = "INBOX"
		}
		if back != want {
			t.Errorf("ServerName(%q, %q, %q) = %q, want %q", tc.archive, tc.delim, tc.prefix, back, want)
		}
	}
}

func TestWellKnownNames(t *testing.T) {
	boxes := []Mailbox{
		{Name: "INBOX", Delim: '.'},
		{Name: "INBOX.Sent Items", Delim: '.'},
		{Name: "INBOX.Sent", Delim: '.'}, // "Sent" is preferred over "Sent Items"
		{Name: "INBOX.Deleted Items", Delim: '.'},
		{Name: "INBOX.Junk", Delim: '.', SpecialUse: ""},
		{Name: "INBOX.Spam", Delim: '.', SpecialUse: archive.SpecialJunk}, // attribute wins over a name
		{Name: "INBOX.Archive", Delim: '.', NoSelect: true},               // a \Noselect folder never gets one
		{Name: "INBOX.[Gmail].All Mail", Delim: '.'},
	}
	assignWellKnown(boxes, "INBOX.")
	want := map[string]string{
		"INBOX": "", "INBOX.Sent Items": "", "INBOX.Sent": archive.SpecialSent, "INBOX.Deleted Items": archive.SpecialTrash,
		"INBOX.Junk": "", "INBOX.Spam": archive.SpecialJunk, "INBOX.Archive": "", "INBOX.[Gmail].All Mail": archive.SpecialAll,
	}
	for _, m := range boxes {
		if m.SpecialUse != want[m.Name] {
			t.Errorf("%s: special use %q, want %q", m.Name, m.SpecialUse, want[m.Name])
		}
	}
}

func TestSupportedStatusDropsUnsupported(t *testing.T) {
	c := &Conn{Caps: imap.CapSet{imap.CapIMAP4rev1: {}}}
	o := c.SupportedStatus(&imap.StatusOptions{NumMessages: true, HighestModSeq: true, Size: true, NumRecent: true})
	if !o.NumMessages || o.HighestModSeq || o.Size || o.NumRecent {
		t.Errorf("got %+v", o)
	}
	c.Caps[imap.CapCondStore] = struct{}{}
	c.Caps[imap.CapStatusSize] = struct{}{}
	o = c.SupportedStatus(&imap.StatusOptions{HighestModSeq: true, Size: true})
	if !o.HighestModSeq || !o.Size {
		t.Errorf("got %+v", o)
	}
}

func TestStreamParserLiteralsAndTags(t *testing.T) {
	var lines []line
	var p streamParser
	input := "* 1 FETCH (UID 7 BODY[] {12}\r\nhello\r\nworld)\r\n" +
		"T3 OK done\r\n" + "* 2 FETCH (BODY[] {0}\r\n)\r\n"
	// Feed byte by byte: boundaries must not matter.
	for i := 0; i < len(input); i++ {
		p.feed([]byte{input[i]}, func(l line) error {
			l.head = append([]byte(nil), l.head...)
			lines = append(lines, l)
			return nil
		})
	}
	if len(lines) != 5 {
		t.Fatalf("got %d lines: %+v", len(lines), lines)
	}
	if string(lines[0].head) != "* 1 FETCH (UID 7 BODY[] {12}" || lines[0].literal != 12 {
		t.Errorf("line 0: %+v", lines[0])
	}
	if !lines[1].continued || lines[1].litBefore != 12 || string(lines[1].head) != ")" {
		t.Errorf("line 1 (after the literal): %+v %q", lines[1], lines[1].head)
	}
	if tag, ok := responseTag(lines[2].head); !ok || tag != "T3" {
		t.Errorf("line 2 tag %q %v", tag, ok)
	}
	if lines[3].literal != 0 || string(lines[4].head) != ")" {
		t.Errorf("zero-length literal: %+v %+v", lines[3], lines[4])
	}
}

func TestLiteralSize(t *testing.T) {
	for in, want := range map[string]int64{"{5}": 5, "x {123+}": 123, "{7-}": 7, "{}": 0, "text }": 0, "{-1}": 0, "{9x}": 0} {
		if got := literalSize([]byte(in)); got != want {
			t.Errorf("literalSize(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestValidMUTF7(t *testing.T) {
	for s, want := range map[string]bool{
		"INBOX": true, "Entw&APw-rfe": true, "Tom &- Jerry": true, "Entwürfe": true, "&ZeVnLIqe-": true,
		"Tom & Jerry": false, "&Jjo": false, "a\x01b": false, "\xff": false, "&AGE-": false /* "a" encoded */, "&AOQ-&AOQ-": false,
	} {
		if got := validMUTF7(s); got != want {
			t.Errorf("validMUTF7(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestListSurvivesBadNames(t *testing.T) {
	m := imaptest.StartMini(t)
	m.AddFolder("Good", 2)
	m.Set(func(m *imaptest.Mini) {
		m.ExtraNames = []string{`"Tom & Jerry"`, `"&Jjo"`, "Bad&Atom", `"ctl` + "\x01" + `x"`, "{6}\r\nnu\x00l&x", "{5}\r\nLit&-"}
	})
	c := dialOK(t, testAccount(m.Host, m.Port, account.Plain, "x"))
	boxes, err := c.List(context.Background())
	if err != nil {
		t.Fatalf("LIST failed: %v", err)
	}
	got := map[string]Mailbox{}
	for _, b := range boxes {
		got[b.Name] = b
	}
	for name, raw := range map[string]string{"Tom & Jerry": "Tom & Jerry", "&Jjo": "&Jjo", "Bad&Atom": "Bad&Atom", "ctl?x": "ctl\x01x", "nu?l&x": "nu\x00l&x"} {
		b, ok := got[name]
		if !ok || !b.BadName || b.RawName != raw {
			t.Errorf("%q: %+v (listed: %v)", name, b, boxes)
		}
	}
	for _, name := range []string{"Good", "Lit&"} {
		if g, ok := got[name]; !ok || g.BadName {
			t.Errorf("%s: %+v", name, g)
		}
	}
	// The connection is still usable, and later lists work without the fixer.
	if err := c.Client.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// With Options.ListStatus the folder list goes out before the answers to
// the questions Dial asks after login, ListStatus returns it without
// asking again, and bad names in it are fixed as in any LIST.
func TestDialSendsFolderList(t *testing.T) {
	m := imaptest.StartMini(t)
	m.AddFolder("Good", 2)
	m.Set(func(m *imaptest.Mini) { m.ExtraNames = []string{`"Tom & Jerry"`} })
	var trace testkit.Buffer
	a := testAccount(m.Host, m.Port, account.Plain, "x")
	a.Trace = &trace
	status := &imap.StatusOptions{NumMessages: true, UIDNext: true}
	c, err := DialOptions(context.Background(), a, Options{ListStatus: status})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	boxes, err := c.ListStatus(context.Background(), status)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, b := range boxes {
		names[b.Name] = b.BadName
	}
	if bad, ok := names["Tom & Jerry"]; !ok || !bad || len(boxes) != 3 {
		t.Errorf("folders %+v", boxes)
	}
	lines := strings.Split(trace.String(), "\n")
	listAll, hierarchyAnswered, hierarchyTag := -1, -1, ""
	for i, l := range lines {
		_, cmd, client := strings.Cut(l, " C: ")
		_, answer, server := strings.Cut(l, " S: ")
		switch {
		case client && strings.Contains(cmd, `LIST "" ""`):
			hierarchyTag, _, _ = strings.Cut(cmd, " ")
		case client && strings.Contains(cmd, `LIST "" "*"`):
			if listAll >= 0 {
				t.Errorf("the folder list was asked for twice:\n%s", trace.String())
			}
			listAll = i
		case server && hierarchyTag != "" && hierarchyAnswered < 0 && strings.HasPrefix(answer, hierarchyTag+" OK"):
			hierarchyAnswered = i
		}
	}
	if listAll < 0 || hierarchyAnswered < 0 || hierarchyAnswered < listAll {
		t.Errorf("the folder list (line %d) did not go out before the hierarchy question was answered (line %d):\n%s",
			listAll, hierarchyAnswered, trace.String())
	}
	// A list with other items is asked for anew.
	if _, err := c.ListStatus(context.Background(), &imap.StatusOptions{NumMessages: true}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(trace.String(), `LIST "" "*"`); n != 2 {
		t.Errorf("%d folder lists after a second ListStatus, want 2", n)
	}
}
