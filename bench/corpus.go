package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// folderPlan is one folder of the seeded account and how many messages it
// gets. The split follows issue 7: INBOX ~60%, Sent ~20%, the rest over
// nested folders, 10 folders in all.
type folderPlan struct {
	Name  string
	Count int
}

var accountFolders = []folderPlan{
	{"INBOX", 3000},
	{"Sent", 1000},
	{"Drafts", 20},
	{"Trash", 80},
	{"Junk", 60},
	{"Archive", 200},
	{"Archive/2023", 250},
	{"Archive/2024", 200},
	{"Lists/go-nuts", 130},
	{"Work/Projects/mailark", 60},
}

// hugeMessages places the few messages over 10 MB: folder, index in the
// folder, size. Fixed rather than drawn so every run has exactly these.
var hugeMessages = []struct {
	Folder string
	Index  int
	Size   int
}{
	{"INBOX", 700, 10_500_000},
	{"INBOX", 2100, 12_500_000},
	{"Sent", 400, 11_500_000},
	{"Archive/2023", 90, 14_000_000},
}

// Size classes of ordinary messages.
const (
	smallMin      = 2_000
	smallMax      = 50_000
	attachMin     = 100_000
	attachMax     = 2_000_000
	attachPercent = 3.6
)

// msgSpec describes one generated message; render turns it into bytes.
// Everything derives from Seed, so the corpus is the same on every run.
type msgSpec struct {
	Folder string
	Index  int
	Size   int // approximate size of the rendered message
	Attach bool
	Flags  string // maildir info letters, sorted (D F R S T)
	Date   time.Time
	Seed   uint64
}

// corpusBase is the newest INTERNALDATE of the corpus.
var corpusBase = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// planAccount returns the specs of the whole seeded account.
func planAccount(seed uint64) []msgSpec {
	var specs []msgSpec
	for fi, f := range accountFolders {
		specs = append(specs, planFolder(seed+uint64(fi)*7919, f.Name, f.Count, 0)...)
	}
	for _, h := range hugeMessages {
		for i := range specs {
			if specs[i].Folder == h.Folder && specs[i].Index == h.Index {
				specs[i].Size, specs[i].Attach = h.Size, true
			}
		}
	}
	return specs
}

// planFolder draws count messages for one folder; first offsets Index so
// that later batches (the "50 new" of the incremental runs) get new
// Message-IDs and later dates.
func planFolder(seed uint64, folder string, count, first int) []msgSpec {
	r := rand.New(rand.NewPCG(seed, 0x6d61696c61726b))
	specs := make([]msgSpec, 0, count)
	for i := first; i < first+count; i++ {
		s := msgSpec{Folder: folder, Index: i, Seed: r.Uint64()}
		if r.Float64()*100 < attachPercent {
			s.Size, s.Attach = logUniform(r, attachMin, attachMax), true
		} else {
			s.Size = logUniform(r, smallMin, smallMax)
		}
		s.Flags = drawFlags(r, folder)
		// Older folders hold older mail; within a folder the date grows
		// with the index, as it does on a real server.
		age := time.Duration(folderAgeDays(folder)) * 24 * time.Hour
		step := age / time.Duration(count+first+1)
		s.Date = corpusBase.Add(-age + time.Duration(i)*step + time.Duration(r.IntN(3600))*time.Second)
		specs = append(specs, s)
	}
	return specs
}

func folderAgeDays(folder string) int {
	switch {
	case folder == "Archive":
		return 1200
	case strings.HasPrefix(folder, "Archive/2023"):
		return 800
	case strings.HasPrefix(folder, "Archive/2024"):
		return 450
	default:
		return 365
	}
}

func logUniform(r *rand.Rand, lo, hi int) int {
	return int(math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

func drawFlags(r *rand.Rand, folder string) string {
	switch folder {
	case "Sent", "Trash", "Junk":
		return "S"
	case "Drafts":
		return "DS"
	}
	p := r.Float64()
	switch {
	case p < 0.10:
		return "RS"
	case p < 0.13:
		return "FS"
	case p < 0.85:
		return "S"
	default:
		return ""
	}
}

// bigMessageSpec is the single 50 MB message of the memory check.
func bigMessageSpec() msgSpec {
	return msgSpec{Folder: "INBOX", Index: 0, Size: 50_000_000, Attach: true, Flags: "S", Date: corpusBase, Seed: 50}
}

var vocabulary = strings.Fields(`the a mail server backup folder message archive restore fetch
	imap pop3 maildir mbox sync account password meeting tomorrow report budget
	release review patch build test deploy invoice project schedule please thanks
	regards attached document draft final version update question answer cheers
	weekend holiday travel flight hotel lunch coffee office remote network disk
	memory latency throughput pipeline folder client delivery queue spam filter`)

var people = []string{"Alice Martin", "Bob Keller", "Chloé Dubois", "Dmitri Ivanov", "Eva Novak",
	"Farid Haddad", "Grace Okafor", "Hiro Tanaka", "Ines Costa", "Jonas Berg"}

// render writes the message for s with CRLF line ends and returns its size.
// It streams: a 50 MB message never sits in memory.
func render(w io.Writer, s msgSpec) (int64, error) {
	cw := &countingWriter{w: bufio.NewWriterSize(w, 64<<10)}
	r := rand.New(rand.NewPCG(s.Seed, uint64(s.Index)))
	writeHeader(cw, r, s)
	if s.Attach {
		writeAttachmentBody(cw, r, s)
	} else {
		writeText(cw, r, s.Size-int(cw.n))
	}
	if err := cw.w.(*bufio.Writer).Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, cw.err
}

func writeHeader(w *countingWriter, r *rand.Rand, s msgSpec) {
	from, to := people[r.IntN(len(people))], people[r.IntN(len(people))]
	if s.Folder == "Sent" || s.Folder == "Drafts" {
		from = "Bench User"
	} else {
		to = "Bench User"
	}
	date := s.Date.Format(time.RFC1123Z)
	hop := r.IntN(200) + 1
	fmt.Fprintf(w, "Return-Path: <%s>\r\n", address(from))
	fmt.Fprintf(w, "Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\r\n\tby mail.example.org with ESMTPS id %016x\r\n\tfor <%s>; %s\r\n",
		hop, hop, hop, r.Uint64(), address(to), date)
	fmt.Fprintf(w, "Date: %s\r\n", date)
	fmt.Fprintf(w, "From: %s <%s>\r\n", from, address(from))
	fmt.Fprintf(w, "To: %s <%s>\r\n", to, address(to))
	fmt.Fprintf(w, "Subject: %s\r\n", sentence(r, 3+r.IntN(6)))
	fmt.Fprintf(w, "Message-ID: <%d.%s.%016x@bench.example.org>\r\n", s.Index, strings.ReplaceAll(s.Folder, "/", "."), s.Seed)
	w.WriteString("MIME-Version: 1.0\r\n")
	if s.Attach {
		fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=\"b-%016x\"\r\n\r\n", s.Seed)
		return
	}
	w.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
}

func address(name string) string {
	first, _, _ := strings.Cut(strings.ToLower(name), " ")
	return strings.NewReplacer("é", "e").Replace(first) + "@example.org"
}

func sentence(r *rand.Rand, words int) string {
	var b strings.Builder
	for i := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[r.IntN(len(vocabulary))])
	}
	return b.String()
}

// writeText writes about n bytes of wrapped prose. About one message in
// fifty has a body line starting with "From ", which mbox writers must
// escape.
func writeText(w *countingWriter, r *rand.Rand, n int) {
	start := w.n
	if r.IntN(50) == 0 {
		w.WriteString("From the desk of the bench:\r\n")
	}
	for w.n-start < int64(n) {
		w.WriteString(sentence(r, 8+r.IntN(5)))
		w.WriteString(".\r\n")
	}
}

func writeAttachmentBody(w *countingWriter, r *rand.Rand, s msgSpec) {
	boundary := fmt.Sprintf("b-%016x", s.Seed)
	fmt.Fprintf(w, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	writeText(w, r, 600)
	fmt.Fprintf(w, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"file-%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		boundary, s.Index)
	// base64 of random bytes: 57 raw bytes make one 76-character line.
	raw := make([]byte, 57)
	line := make([]byte, 78)
	line[76], line[77] = '\r', '\n'
	for w.n < int64(s.Size)-int64(len(boundary))-8 {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(line[:76], raw)
		w.Write(line)
	}
	fmt.Fprintf(w, "--%s--\r\n", boundary)
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countingWriter) WriteString(s string) { c.Write([]byte(s)) }

// corpusStats totals a set of specs after rendering.
type corpusStats struct {
	Messages int
	Bytes    int64
}

// writeStagingMaildir renders specs into a Maildir++ tree at dir (INBOX at
// the root, "A/B" as ".A.B"), one file per message with its flags in the
// name and INTERNALDATE as mtime: the input doveadm import reads.
func writeStagingMaildir(dir string, specs []msgSpec) (corpusStats, error) {
	var st corpusStats
	made := map[string]bool{}
	for _, s := range specs {
		fdir := dir
		if s.Folder != "INBOX" {
			fdir = filepath.Join(dir, "."+strings.ReplaceAll(s.Folder, "/", "."))
		}
		if !made[fdir] {
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(fdir, sub), 0o755); err != nil {
					return st, err
				}
			}
			made[fdir] = true
		}
		name := filepath.Join(fdir, "cur", fmt.Sprintf("%d.bench%d.%016x:2,%s", s.Date.Unix(), s.Index, s.Seed, s.Flags))
		n, err := renderFile(name, s)
		if err != nil {
			return st, err
		}
		st.Messages++
		st.Bytes += n
	}
	return st, nil
}

func renderFile(name string, s msgSpec) (int64, error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	n, err := render(f, s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("render %s: %w", name, err)
	}
	return n, os.Chtimes(name, s.Date, s.Date)
}
