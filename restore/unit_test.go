package restore

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/imapconn"
)

func cand(folder, key, id string, size int64, ledger bool) *candidate {
	return &candidate{folder: folder, meta: archive.Meta{Key: key, Size: size, MessageID: id}, identity: identityOf(id, ""), ledger: ledger}
}

func srvMsg(uid uint32, id string, size int64) *serverMessage {
	return &serverMessage{UID: uid, MessageID: id, Size: size, identity: identityOf(id, "")}
}

func keys(cs []*candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.meta.Key)
	}
	return out
}

func TestMatchCountsCopies(t *testing.T) {
	noCRLF := func(*candidate) (int64, error) { return 0, errors.New("not needed") }
	// Two identical archive messages, one copy on the server: one upload.
	m, err := match([]*candidate{cand("I", "1", "<a@x>", 10, false), cand("I", "2", "<a@x>", 10, false)},
		[]*serverMessage{srvMsg(1, "<a@x>", 10)}, noCRLF)
	if err != nil || !reflect.DeepEqual(keys(m.upload), []string{"2"}) || len(m.present) != 1 {
		t.Errorf("copies: upload %v present %d err %v", keys(m.upload), len(m.present), err)
	}
	// Same Message-ID, other size: another message.
	m, _ = match([]*candidate{cand("I", "1", "<a@x>", 12, false)}, []*serverMessage{srvMsg(1, "<a@x>", 10)},
		func(*candidate) (int64, error) { return 13, nil })
	if len(m.upload) != 1 || len(m.unmatched) != 1 {
		t.Errorf("same id, other size: upload %d unmatched %d", len(m.upload), len(m.unmatched))
	}
	// An LF-only archive copy matches the server's CRLF copy.
	m, _ = match([]*candidate{cand("I", "1", "<a@x>", 10, false)}, []*serverMessage{srvMsg(1, " <a@x> (comment)", 12)},
		func(*candidate) (int64, error) { return 12, nil })
	if len(m.present) != 1 {
		t.Errorf("CRLF form not matched: upload %d", len(m.upload))
	}
	// The ledger claims its server copy first: an interrupted run uploaded
	// copy 1 of 2 and recorded it; copy 2 must still go up even though it
	// comes first in date order.
	m, _ = match([]*candidate{cand("I", "2", "<a@x>", 10, false), cand("I", "1", "<a@x>", 10, true)},
		[]*serverMessage{srvMsg(1, "<a@x>", 10)}, noCRLF)
	if !reflect.DeepEqual(keys(m.upload), []string{"2"}) || len(m.ledger) != 1 || len(m.present) != 0 {
		t.Errorf("ledger first: upload %v ledger %d present %d", keys(m.upload), len(m.ledger), len(m.present))
	}
	// Messages without Message-ID match by header digest only.
	c := cand("I", "1", "", 10, false)
	c.identity = identityOf("", "d1")
	s := &serverMessage{UID: 1, Size: 10, Digest: "d1", identity: identityOf("", "d1")}
	m, _ = match([]*candidate{c, cand("I", "2", "", 10, false)}, []*serverMessage{s}, noCRLF)
	if !reflect.DeepEqual(keys(m.upload), []string{"2"}) {
		t.Errorf("digest: upload %v", keys(m.upload))
	}
}

func TestHeaderDigestAndFields(t *testing.T) {
	a := "Date: Mon, 2 Jan 2023 10:00:00 +0100\r\nFrom: a@x\r\nSubject: hello\r\n  world\r\nX-Other: 1\r\n\r\nbody\r\n"
	b := "X-Other: 2\nsubject: hello world\nFROM:  a@x\nDate: Mon, 2 Jan 2023 10:00:00 +0100\n\nother body\n"
	if headerDigest(strings.NewReader(a)) != headerDigest(strings.NewReader(b)) {
		t.Errorf("same header fields, different digests")
	}
	c := strings.Replace(a, "hello", "bye", 1)
	if headerDigest(strings.NewReader(a)) == headerDigest(strings.NewReader(c)) {
		t.Errorf("different subjects, same digest")
	}
	// As the server returns the fields (BODY[HEADER.FIELDS (...)]).
	fetched := []byte("Subject: hello\r\n  world\r\nFrom: a@x\r\nDate: Mon, 2 Jan 2023 10:00:00 +0100\r\n\r\n")
	if headerBytesDigest(fetched) != headerDigest(strings.NewReader(a)) {
		t.Errorf("server-side digest differs from archive-side digest")
	}
	f := headerFields(strings.NewReader("Message-ID:\r\n <x@y>\r\nMessage-ID: <second@y>\r\n\r\n"), "message-id")
	if normalizeMessageID(f["message-id"]) != "<x@y>" {
		t.Errorf("folded Message-ID: %q", f["message-id"])
	}
	if got := headerFields(strings.NewReader(""), "date"); len(got) != 0 {
		t.Errorf("empty message: %v", got)
	}
}

func TestCRLFSize(t *testing.T) {
	for in, want := range map[string]int64{
		"a\r\nb\r\n": 6, "a\nb\n": 6, "a\rb": 4, "a\r": 3, "": 0, "x": 1, "a\r\n\nb": 6,
	} {
		if got, _ := crlfSize(strings.NewReader(in)); got != want {
			t.Errorf("crlfSize(%q) = %d, want %d", in, got, want)
		}
	}
	long := strings.Repeat("x", 200<<10) + "\n"
	if got, _ := crlfSize(strings.NewReader(long)); got != int64(len(long)+1) {
		t.Errorf("long line: %d", got)
	}
}

func TestSanitizeFlags(t *testing.T) {
	all := &targetState{keywords: true}
	got := sanitizeFlags([]string{`\Seen`, `\Recent`, `\seen`, "bad flag", "$Label1", `\Unknown`, "Wichtig✓",
		"$Label(1)", `\deleted`, strings.Repeat("k", 51), "Work", "work"}, all)
	want := []imap.Flag{imap.FlagSeen, "$Label1", imap.FlagDeleted, "Work"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sanitizeFlags = %q, want %q", got, want)
	}
	// Without \* in PERMANENTFLAGS only the keywords the folder names.
	some := &targetState{allowed: map[string]bool{"$forwarded": true}}
	got = sanitizeFlags([]string{`\Answered`, "$Forwarded", "Work"}, some)
	if !reflect.DeepEqual(got, []imap.Flag{imap.FlagAnswered, "$Forwarded"}) {
		t.Errorf("without \\*: %q", got)
	}
}

func TestAppendDate(t *testing.T) {
	d := time.Date(2020, 5, 1, 10, 0, 0, 500, time.FixedZone("", 3600))
	if got := appendDate(d); !got.Equal(d.Truncate(time.Second)) {
		t.Errorf("appendDate(%v) = %v", d, got)
	}
	for _, bad := range []time.Time{{}, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if !appendDate(bad).IsZero() {
			t.Errorf("appendDate(%v) should be left to the server", bad)
		}
	}
}

func TestAppendUIDs(t *testing.T) {
	if s := appendUIDs("APPENDUID 38505 3955:3957", 3); s.validity != 38505 || !reflect.DeepEqual(s.uids, []uint32{3955, 3956, 3957}) {
		t.Errorf("range: %+v", s)
	}
	if s := appendUIDs("APPENDUID 7 1,4:5", 3); !reflect.DeepEqual(s.uids, []uint32{1, 4, 5}) {
		t.Errorf("list: %+v", s)
	}
	for _, bad := range []string{"APPENDUID 7 1:2", "APPENDUID x 1", "", "APPENDUID 7 5:1", "APPENDUID 7 1:4000000000"} {
		if s := appendUIDs(bad, 3); s.uids != nil {
			t.Errorf("%q gave UIDs %v", bad, s.uids)
		}
	}
}

func TestQuoteMailbox(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX": "INBOX", "inbox": "INBOX", "Sent Items": `"Sent Items"`, "Entwürfe/Ünter": `"Entw&APw-rfe/&ANw-nter"`,
		`a"b\c`: `"a\"b\\c"`, "Tom & Jerry": `"Tom &- Jerry"`,
	} {
		if got, ok := quoteMailbox(in); !ok || got != want {
			t.Errorf("quoteMailbox(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	// Control characters are encoded, never sent raw.
	if got, ok := quoteMailbox("a\r\nb"); !ok || strings.ContainsAny(got, "\r\n") {
		t.Errorf("quoteMailbox with CRLF = %q %v", got, ok)
	}
}

// fakeReader serves one message whose bytes may change after listing.
type fakeReader struct{ data string }

func (f *fakeReader) Folders() ([]archive.FolderInfo, error)  { return nil, nil }
func (f *fakeReader) Messages(string) ([]archive.Meta, error) { return nil, nil }
func (f *fakeReader) Close() error                            { return nil }
func (f *fakeReader) Open(string, string) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(f.data)), nil
}

func TestCopyExactHoldsBackTheLastByte(t *testing.T) {
	msg := "Subject: x\r\n\r\nbody\r\n"
	meta := archive.Meta{Key: "1", Size: int64(len(msg)), SHA256: sum([]byte(msg))}
	var out bytes.Buffer
	if err := copyExact(&out, &fakeReader{msg}, "I", meta); err != nil || out.String() != msg {
		t.Fatalf("copyExact: %v %q", err, out.String())
	}
	for name, changed := range map[string]string{
		"same size, other bytes": strings.Replace(msg, "body", "BODY", 1),
		"shorter":                msg[:len(msg)-3],
		"longer":                 msg + "more",
	} {
		out.Reset()
		err := copyExact(&out, &fakeReader{changed}, "I", meta)
		var se *sourceError
		if !errors.As(err, &se) {
			t.Errorf("%s: err = %v, want a source error", name, err)
		}
		if out.Len() >= len(msg) {
			t.Errorf("%s: the whole message was written (%d bytes)", name, out.Len())
		}
	}
}

func TestPlanFolders(t *testing.T) {
	boxes := []imapconn.Mailbox{
		{Name: "INBOX", Delim: '.'}, {Name: "INBOX.Sent Items", Delim: '.', SpecialUse: archive.SpecialSent},
		{Name: "INBOX.Trash", Delim: '.', SpecialUse: archive.SpecialTrash}, {Name: "INBOX.Work", Delim: '.'},
	}
	layout := targetLayout{delim: '.', prefix: "INBOX.", boxes: boxes}
	folders := []archive.FolderInfo{
		{Name: "INBOX"}, {Name: "Sent", SpecialUse: archive.SpecialSent}, {Name: "Sent/2019"},
		{Name: "Gesendet", SpecialUse: archive.SpecialSent}, {Name: "Deleted Items", SpecialUse: archive.SpecialTrash},
		{Name: "Work"}, {Name: "v1.2"}, {Name: "Old", NoSelect: true}, {Name: "Old/2001"}, {Name: "INBOX/Sub"},
	}
	got := map[string]string{}
	for _, p := range planFolders(folders, layout, &Options{FolderMap: map[string]string{"Old": "Archive/Old"}}) {
		for _, s := range p.Sources {
			got[s.Name] = p.Server
		}
		if p.Create == p.Exists {
			t.Errorf("%s: create %v exists %v", p.Server, p.Create, p.Exists)
		}
	}
	want := map[string]string{
		"INBOX": "INBOX", "Sent": "INBOX.Sent Items", "Sent/2019": "INBOX.Sent Items.2019", "Gesendet": "INBOX.Sent Items",
		"Deleted Items": "INBOX.Trash", "Work": "INBOX.Work", "v1.2": "INBOX.v1\u20242", "Old/2001": "INBOX.Archive.Old.2001",
		"INBOX/Sub": "INBOX.Sub",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n got %v\nwant %v", got, want)
	}

	// With a prefix everything goes below it, special folders included.
	got = map[string]string{}
	for _, p := range planFolders(folders[:3], targetLayout{delim: '/', boxes: []imapconn.Mailbox{{Name: "Sent", Delim: '/', SpecialUse: archive.SpecialSent}}},
		&Options{Prefix: "Imported/"}) {
		for _, s := range p.Sources {
			got[s.Name] = p.Server
		}
	}
	if want := map[string]string{"INBOX": "Imported/INBOX", "Sent": "Imported/Sent", "Sent/2019": "Imported/Sent/2019"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prefix plan: %v", got)
	}
}

func TestBatchLen(t *testing.T) {
	todo := []*candidate{cand("", "1", "", 10, false), cand("", "2", "", 10, false), cand("", "3", "", 100, false), cand("", "4", "", 1, false)}
	for _, c := range []struct {
		msgs  int
		bytes int64
		want  int
	}{{100, 1000, 4}, {2, 1000, 2}, {100, 25, 2}, {100, 5, 1}} {
		if got := batchLen(todo, c.msgs, c.bytes); got != c.want {
			t.Errorf("batchLen(%d, %d) = %d, want %d", c.msgs, c.bytes, got, c.want)
		}
	}
}
