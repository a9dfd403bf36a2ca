package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	onDisk := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tb := newTailBuffer(f, 0, 8)
	tb.WriteString("abc")
	if got := onDisk(); got != "" {
		t.Fatalf("written before the buffer filled: %q", got)
	}
	tb.WriteString("defghij") // fills the buffer once: 8 bytes go out
	if got := onDisk(); got != "abcdefgh" || tb.end() != 10 {
		t.Fatalf("after filling: %q, end %d", got, tb.end())
	}
	// A cut inside what is still buffered touches no file.
	if err := tb.cut(9); err != nil || onDisk() != "abcdefgh" || tb.end() != 9 {
		t.Fatalf("cut in buffer: %v %q end %d", err, onDisk(), tb.end())
	}
	// A cut before what was written truncates the file.
	if err := tb.cut(5); err != nil || onDisk() != "abcde" || tb.end() != 5 {
		t.Fatalf("cut in file: %v %q end %d", err, onDisk(), tb.end())
	}
	// Bigger than the buffer with nothing pending: one direct write.
	tb.Write([]byte("0123456789"))
	if got := onDisk(); got != "abcde0123456789" || tb.holds(tb.end()) {
		t.Fatalf("direct write: %q", got)
	}
	tb.WriteString("xy")
	if !tb.holds(tb.end()) || tb.holds(15) {
		t.Fatalf("holds: pending bytes are 15..16")
	}
	if err := tb.Flush(); err != nil || onDisk() != "abcde0123456789xy" {
		t.Fatalf("flush: %v %q", err, onDisk())
	}
}

// A message with a new keyword arriving while the first message (and its
// X-IMAPbase header) is still in the write buffer, or partly written,
// must still get its keyword into the header on disk.
func TestMboxKeywordsWhileBuffered(t *testing.T) {
	for _, firstSize := range []int{100, 300 << 10} {
		a := mustOpen(t, Mbox, t.TempDir(), Options{})
		fo := mustCreate(t, a, "INBOX")
		first := []byte("Subject: 1\n\n" + strings.Repeat("x", firstSize) + "\n")
		m1 := mustAppend(t, fo, first, AppendInfo{})
		m2 := mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{Flags: []string{"Work"}})
		mustCommit(t, fo)
		data, err := os.ReadFile(fo.st.(*mboxStore).path)
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := bytes.Cut(data, []byte("\nStatus: "))
		if !bytes.Contains(head, []byte(imapBaseName+"0000000001 0000000000 Work ")) {
			t.Errorf("first message %d bytes: X-IMAPbase lacks the keyword: %q", firstSize, head)
		}
		if got := readMessage(t, fo, m1.Key); !bytes.Equal(got, first) {
			t.Errorf("first message changed")
		}
		if got := readMessage(t, fo, m2.Key); string(got) != "Subject: 2\n\ntwo\n" {
			t.Errorf("second message %q", got)
		}
		a.Close()
	}
}

// A flag change bringing a new keyword, in a run that appends nothing,
// lists it in X-IMAPbase too.
func TestMboxKeywordsOnReopen(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, Mbox, dir, Options{})
	fo := mustCreate(t, a, "INBOX")
	mustAppend(t, fo, []byte("Subject: 1\n\none\n"), AppendInfo{})
	m2 := mustAppend(t, fo, []byte("Subject: 2\n\ntwo\n"), AppendInfo{})
	mustCommit(t, fo)
	a.Close()

	a = mustOpen(t, Mbox, dir, Options{})
	defer a.Close()
	fo = mustFolder(t, a, "INBOX")
	if err := fo.SetFlags(m2.Key, []string{"Later"}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, fo)
	data, _ := os.ReadFile(fo.st.(*mboxStore).path)
	if !bytes.Contains(data, []byte(imapBaseName+"0000000001 0000000000 Later ")) {
		t.Errorf("X-IMAPbase lacks the keyword:\n%.200s", data)
	}
}

// A source failing in the middle of a message leaves nothing of it, in
// the buffer or in the file, and the next message goes where it began.
func TestMboxFailedAppendLeavesNothing(t *testing.T) {
	for _, size := range []int{1000, 600 << 10} {
		a := mustOpen(t, Mbox, t.TempDir(), Options{})
		fo := mustCreate(t, a, "INBOX")
		m1 := mustAppend(t, fo, []byte("Subject: 1\n\none\n"), AppendInfo{})
		broken := &failingReader{data: []byte("Subject: 2\n\n" + strings.Repeat("y", size))}
		if _, err := fo.Append(broken, AppendInfo{}); err == nil {
			t.Fatal("append of a failing source succeeded")
		}
		m3 := mustAppend(t, fo, []byte("Subject: 3\n\nthree\n"), AppendInfo{})
		mustCommit(t, fo)
		data, _ := os.ReadFile(fo.st.(*mboxStore).path)
		if bytes.Contains(data, []byte("Subject: 2")) || bytes.Count(data, []byte("\nFrom ")) != 1 {
			t.Errorf("size %d: the failed message left bytes behind:\n%.300s", size, data)
		}
		if got := readMessage(t, fo, m1.Key); string(got) != "Subject: 1\n\none\n" {
			t.Errorf("first message %q", got)
		}
		if got := readMessage(t, fo, m3.Key); string(got) != "Subject: 3\n\nthree\n" {
			t.Errorf("third message %q", got)
		}
		a.Close()
	}
}
