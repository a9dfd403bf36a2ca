package archive

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchMessages returns n deterministic messages of about size bytes.
func benchMessages(n, size int) [][]byte {
	r := rand.New(rand.NewSource(1))
	out := make([][]byte, n)
	for i := range out {
		var b bytes.Buffer
		fmt.Fprintf(&b, "Message-ID: <%d@bench>\r\nSubject: bench %d\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\n\r\n", i, i)
		for b.Len() < size {
			line := make([]byte, 76)
			for j := range line {
				line[j] = byte('a' + r.Intn(26))
			}
			b.Write(line)
			b.WriteString("\r\n")
		}
		out[i] = b.Bytes()[:size]
	}
	return out
}

// BenchmarkAppendCommit measures the archive's write path: 1,000 messages
// of 20 KB appended, committed every 100 (a fetch batch) or once.
func BenchmarkAppendCommit(b *testing.B) {
	msgs := benchMessages(1000, 20<<10)
	for _, f := range formats {
		for _, every := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/commit-every-%d", f, every), func(b *testing.B) {
				b.SetBytes(int64(len(msgs) * len(msgs[0])))
				for b.Loop() {
					b.StopTimer()
					dir := b.TempDir()
					a := mustOpen(b, f, dir, Options{})
					fo := mustCreate(b, a, "INBOX")
					b.StartTimer()
					for i, m := range msgs {
						if _, err := fo.Append(bytes.NewReader(m), AppendInfo{UID: uint32(i + 1), Flags: []string{`\Seen`}}); err != nil {
							b.Fatal(err)
						}
						if (i+1)%every == 0 {
							mustCommit(b, fo)
						}
					}
					b.StopTimer()
					a.Close()      // the directory is removed after the benchmark: deleting
					b.StartTimer() // thousands of files here would slow the next round
				}
			})
		}
	}
}

// BenchmarkMaildirSync compares the two ways of making new maildir files
// durable at Commit, for a big batch and a small one.
func BenchmarkMaildirSync(b *testing.B) {
	for _, n := range []int{1000, 10} {
		msgs := benchMessages(n, 20<<10)
		for _, m := range []struct {
			name   string
			method syncMethod
		}{{"fsync-each-file", syncEachFile}, {"syncfs", syncFilesystem}} {
			b.Run(fmt.Sprintf("%d-files/%s", n, m.name), func(b *testing.B) {
				old := maildirSync
				maildirSync = m.method
				defer func() { maildirSync = old }()
				b.SetBytes(int64(len(msgs) * len(msgs[0])))
				for b.Loop() {
					b.StopTimer()
					dir := b.TempDir()
					a := mustOpen(b, Maildir, dir, Options{})
					fo := mustCreate(b, a, "INBOX")
					for i, msg := range msgs {
						mustAppend(b, fo, msg, AppendInfo{UID: uint32(i + 1)})
					}
					b.StartTimer()
					mustCommit(b, fo)
					b.StopTimer()
					a.Close()
					b.StartTimer()
				}
			})
		}
	}
}

// bigIndex writes an index log of n entries for a maildir folder.
func bigIndex(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	p := filepath.Join(dir, "index.jsonl")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]record, 0, 1000)
	ixf := &indexFile{path: p, f: f}
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600))
	for i := range n {
		sum := benchSum(i)
		recs = append(recs, record{
			Op: opAdd, Key: fmt.Sprintf("17000%05d.M%dP1Q%dRdeadbeef.host", i, i, i), Size: 20000 + int64(i%5000),
			SHA: sum, MID: fmt.Sprintf("<%d.%d@mail.example.org>", i, i*7), Flags: [][]string{{`\Seen`}, {`\Answered`, `\Seen`}, nil}[i%3],
			Date: formatDate(date.Add(time.Duration(i) * time.Minute)), UID: uint32(i + 1), Added: 1700000000,
		})
		if len(recs) == cap(recs) {
			if err := ixf.appendRecords(recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	ixf.appendRecords(recs)
	f.Close()
	return p
}

// BenchmarkIndexLoad loads a 100,000-message folder index.
func BenchmarkIndexLoad(b *testing.B) {
	p := bigIndex(b, 100000)
	st, _ := os.Stat(p)
	b.SetBytes(st.Size())
	for b.Loop() {
		idx, _, err := loadIndex(p, false)
		if err != nil || idx.count != 100000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexLookup is "have I got this message already?" in a
// 100,000-message folder, by each key fetch and restore use.
func BenchmarkIndexLookup(b *testing.B) {
	p := bigIndex(b, 100000)
	idx, _, err := loadIndex(p, false)
	if err != nil {
		b.Fatal(err)
	}
	fo := &Folder{idx: idx}
	i := 0
	for b.Loop() {
		i = (i + 7919) % 100000
		if _, ok := fo.ByUID(uint32(i + 1)); !ok {
			b.Fatal("ByUID")
		}
		if len(fo.BySHA256(benchSum(i))) != 1 {
			b.Fatal("BySHA256")
		}
		if len(fo.ByMessageID(fmt.Sprintf("<%d.%d@mail.example.org>", i, i*7))) != 1 {
			b.Fatal("ByMessageID")
		}
	}
}

// benchSum is the digest recorded for message i of bigIndex: a real
// SHA-256, so the lookup maps see realistic keys.
func benchSum(i int) string { return sha([]byte(fmt.Sprint(i))) }
