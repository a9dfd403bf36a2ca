package main

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quoteByLines is the obvious line-by-line mboxrd quoting, the reference
// for the buffer-at-a-time copyEscaped.
func quoteByLines(msg []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if mboxNeedsEscape(line) {
			out.WriteByte('>')
		}
		out.Write(line)
	}
	return out.Bytes()
}

func TestCopyEscapedMatchesLineByLine(t *testing.T) {
	pieces := []string{"From ", ">From ", ">>From x", "From", "\n", "\r\n", "a", "xFrom ", " From ", "F"}
	r := rand.New(rand.NewPCG(1, 2))
	for _, bufSize := range []int{1, 2, 5, 7, 64, 4096} {
		for range 300 {
			var b strings.Builder
			for range r.IntN(40) {
				b.WriteString(pieces[r.IntN(len(pieces))])
			}
			msg := []byte(b.String())
			var out bytes.Buffer
			m := &mboxSink{w: bufio.NewWriter(&out), buf: make([]byte, bufSize)}
			last, err := m.copyEscaped(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			m.w.Flush()
			want := quoteByLines(msg)
			// Exact whenever every line fits the buffer (the sink's buffer
			// is 256 KiB; a longer line is only checked at its start).
			if bufSize > longestLine(msg) && !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("buf %d: quoting %q gave %q, want %q", bufSize, msg, out.Bytes(), want)
			}
			if len(msg) > 0 && last != msg[len(msg)-1] {
				t.Fatalf("last byte %q, want %q", last, msg[len(msg)-1])
			}
		}
	}
}

func longestLine(msg []byte) int {
	n := 0
	for _, l := range bytes.SplitAfter(msg, []byte("\n")) {
		n = max(n, len(l))
	}
	return n
}

// What the trash takes is moved, not deleted, until it is closed; its
// pages can be dropped once written back; a path on another file
// system, or missing, is no error.
func TestTrash(t *testing.T) {
	root := t.TempDir()
	tr, err := newTrash(filepath.Join(root, "trash"), 0, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(root, "run")
	if err := os.MkdirAll(filepath.Join(run, "cur"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "cur", "m1"), []byte("message"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.discard(run, filepath.Join(root, "missing")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(run); !os.IsNotExist(err) {
		t.Fatalf("discarded path still there: %v", err)
	}
	kept, err := os.ReadFile(filepath.Join(root, "trash", "1", "cur", "m1"))
	if err != nil || string(kept) != "message" {
		t.Fatalf("trash holds %q, %v", kept, err)
	}
	tr.evict()
	if tr.evicted != 1 {
		t.Errorf("evicted %d entries, want 1", tr.evicted)
	}
	if err := tr.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "trash")); !os.IsNotExist(err) {
		t.Errorf("trash left after close: %v", err)
	}
}
