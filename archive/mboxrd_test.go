package archive

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzMboxrdRoundTrip: quoting then unquoting any bytes, fed in any
// chunks, gives them back, and the quoted form never has a line that an
// mbox reader would take for a message separator.
func FuzzMboxrdRoundTrip(f *testing.F) {
	for _, c := range fidelityCorpus() {
		if len(c.msg) < 4096 {
			f.Add(c.msg, uint8(7))
		}
	}
	f.Add([]byte(">>From x\n>From\nFrom"), uint8(1))
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint8) {
		n := int(chunk%64) + 1
		var quoted bytes.Buffer
		codec := newRDCodec(false)
		for rest := msg; len(rest) > 0; {
			k := min(n, len(rest))
			if err := codec.write(&quoted, rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		if err := codec.flush(&quoted); err != nil {
			t.Fatal(err)
		}
		q := quoted.Bytes()
		if bytes.HasPrefix(q, []byte("From ")) || bytes.Contains(q, []byte("\nFrom ")) {
			t.Fatalf("quoted form has a From line: %q", q)
		}
		if want := quoteByLines(msg); !bytes.Equal(q, want) {
			t.Fatalf("quoted %q as %q, want %q", msg, q, want)
		}
		got, err := io.ReadAll(iotest.OneByteReader(newRDReader(iotest.HalfReader(bytes.NewReader(q)))))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round trip: %q -> %q -> %q", msg, q, got)
		}
	})
}

// quoteByLines is mboxrd quoting written the plain way, line by line: the
// reference the streaming codec must agree with.
func quoteByLines(msg []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			out = append(out, '>')
		}
		out = append(out, line...)
	}
	return out
}
