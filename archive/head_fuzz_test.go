package archive

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// fullMessageID is the Message-ID as the full header parse finds it: the
// answer plainMessageID must agree with whenever it gives one.
func fullMessageID(block []byte) string {
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(block)))
	if err != nil {
		return scanHeader(block, "message-id")
	}
	return strings.TrimSpace(th.Get("Message-Id"))
}

func TestPlainMessageID(t *testing.T) {
	for _, c := range []struct {
		head   string
		want   string
		answer bool // the fast path answers (else the full parse does)
	}{
		{"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody", "<a@b>", true},
		{"message-id:<a@b>\n\n", "<a@b>", true},
		{"Subject: x\r\n\r\n", "", true},
		{"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n", "<a@b>", true},
		{"Message-ID:\r\n <folded@b>\r\n\r\n", "<folded@b>", false},
		{"Message-ID: <a b>\r\n\r\n", "<a b>", false},
		{"Message-ID : <a@b>\r\n\r\n", "<a@b>", false},
		{"Message-IDx: <a@b>\r\n\r\n", "", false},
		{"From x@y Mon Jan  1 00:00:00 2024\nMessage-Id: <m@x>\n\n", "<m@x>", true},
		{"broken line\r\nMessage-ID: <a@b>\r\n\r\n", "<a@b>", true},
	} {
		block := headerBlock([]byte(c.head))
		got, ok := plainMessageID(block)
		if ok != c.answer {
			t.Errorf("%q: fast path answered %v, want %v", c.head, ok, c.answer)
		}
		if ok && got != c.want {
			t.Errorf("%q: fast path says %q, want %q", c.head, got, c.want)
		}
		if full := parseHeadFields([]byte(c.head), false).messageID; full != c.want {
			t.Errorf("%q: parseHeadFields says %q, want %q", c.head, full, c.want)
		}
		if full := fullMessageID(block); full != c.want {
			t.Errorf("%q: the full parse says %q, want %q (test case wrong?)", c.head, full, c.want)
		}
	}
}

// FuzzPlainMessageID checks that the fast Message-ID scan never answers
// differently from the full header parse.
func FuzzPlainMessageID(f *testing.F) {
	for _, s := range []string{
		"Message-ID: <a@b>\r\n\r\n",
		"Subject: x\r\nMessage-Id:\t<a@b> \r\n\r\n",
		"Message-ID:\r\n <a@b>\r\n\r\n",
		"X: y\r\n z\r\nmessage-id: <q>\n\n",
		"From a b\nMessage-ID: <x>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		block := headerBlock(head)
		got, ok := plainMessageID(block)
		if !ok {
			return
		}
		if want := fullMessageID(block); got != want {
			t.Fatalf("fast scan %q, full parse %q for %q", got, want, block)
		}
	})
}
