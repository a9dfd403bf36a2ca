package imapconn

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
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

// With Options.ListStatus the folder list goes out with the questions
// Dial asks after login, without waiting for their answers: the server
// here answers nothing until it has the folder list command. ListStatus
// returns that list without asking again, bad names in it fixed as in
// any LIST.
func TestDialSendsFolderList(t *testing.T) {
	var lists atomic.Int32
	f := imaptest.StartFake(t, func(c *imaptest.FakeConn) {
		c.Send("* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
		var held []string // tags of unanswered LIST "" ""
		for {
			tag, name, line, err := c.Command()
			if err != nil {
				return
			}
			switch {
			case name == "LOGIN":
				c.Send(tag + " OK [CAPABILITY IMAP4rev1] logged in\r\n")
			case name == "LIST" && strings.HasSuffix(line, `"" ""`):
				held = append(held, tag)
			case name == "LIST":
				lists.Add(1)
				for _, h := range held {
					c.Send(`* LIST (\Noselect) "/" ""` + "\r\n" + h + " OK done\r\n")
				}
				held = nil
				c.Send(`* LIST () "/" INBOX` + "\r\n" + `* LIST () "/" "Tom & Jerry"` + "\r\n" + tag + " OK done\r\n")
			default:
				c.Send(tag + " OK done\r\n")
			}
		}
	})
	status := &imap.StatusOptions{NumMessages: true, UIDNext: true}
	c, err := DialOptions(context.Background(), testAccount(f.Host, f.Port, account.Plain, "x"), Options{ListStatus: status})
	if err != nil {
		t.Fatalf("Dial waited for an answer before sending the folder list: %v", err)
	}
	defer c.Close()
	boxes, err := c.ListStatus(context.Background(), status)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 2 || boxes[1].Name != "Tom & Jerry" || !boxes[1].BadName {
		t.Errorf("folders %+v", boxes)
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("the folder list was asked for %d times, want 1", n)
	}
	// A list with other items is asked for anew.
	if _, err := c.ListStatus(context.Background(), &imap.StatusOptions{NumMessages: true}); err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n != 2 {
		t.Errorf("%d folder lists after a second ListStatus with other items, want 2", n)
	}
}
