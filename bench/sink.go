package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// messageSink receives fetched messages for the "raw + writes" limit: the
// same bytes written in the same formats with crash-safe durability batched
// once per folder, which is the best a real fetcher can do.
type messageSink interface {
	BeginFolder(name string) error
	// Message consumes exactly n bytes of one message from r. prefix is the
	// FETCH response text before the literal (flags, date), nil for POP3.
	Message(r io.Reader, n int64, prefix []byte) error
	// EndFolder makes the folder's messages durable.
	EndFolder() error
}

func newSink(spec string) (messageSink, error) {
	format, dir, ok := strings.Cut(spec, ":")
	if base, hashed := strings.CutSuffix(format, "+sha256"); hashed && ok {
		inner, err := newSink(base + ":" + dir)
		if err != nil {
			return nil, err
		}
		return &hashingSink{messageSink: inner, h: sha256.New()}, nil
	}
	switch {
	case spec == "" || spec == "none":
		return nil, nil
	case ok && format == "maildir":
		return &maildirSink{root: dir, buf: make([]byte, 256<<10)}, nil
	case ok && format == "mbox":
		return &mboxSink{root: dir}, nil
	}
	return nil, fmt.Errorf("bad sink %q (none, maildir:DIR, mbox:DIR, maildir+sha256:DIR, mbox+sha256:DIR)", spec)
}

// hashingSink also takes the SHA-256 of every message, as the archive
// contract asks of mailark's index: with it, the raw limit shows what
// hashing alone costs on this machine.
type hashingSink struct {
	messageSink
	h hash.Hash
}

func (s *hashingSink) Message(r io.Reader, n int64, prefix []byte) error {
	s.h.Reset()
	if err := s.messageSink.Message(io.TeeReader(r, s.h), n, prefix); err != nil {
		return err
	}
	var sum [sha256.Size]byte
	s.h.Sum(sum[:0])
	return nil
}

// maildirSink writes each message into tmp/ without syncing, then per
// folder: one syncfs, the renames into cur/, one fsync of cur/. A crash
// before the renames leaves only tmp/ files, which maildir readers ignore.
type maildirSink struct {
	root    string
	dir     string
	seq     int
	buf     []byte
	pending [][2]string // tmp path, final path
}

func (m *maildirSink) BeginFolder(name string) error {
	m.dir = filepath.Join(m.root, filepath.FromSlash(name))
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(m.dir, sub), 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (m *maildirSink) Message(r io.Reader, n int64, prefix []byte) error {
	flags, date := fetchMeta(prefix)
	m.seq++
	base := fmt.Sprintf("%d.R%d_%d.bench", time.Now().Unix(), os.Getpid(), m.seq)
	tmp := filepath.Join(m.dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// The struct hides File.ReadFrom so the copy uses our buffer.
	n, err = io.CopyBuffer(struct{ io.Writer }{f}, limitReader(r, n), m.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !date.IsZero() {
		if err := os.Chtimes(tmp, date, date); err != nil {
			return err
		}
	}
	final := filepath.Join(m.dir, "cur", fmt.Sprintf("%s,S=%d:2,%s", base, n, maildirInfo(flags)))
	m.pending = append(m.pending, [2]string{tmp, final})
	return nil
}

func (m *maildirSink) EndFolder() error {
	if err := syncFS(m.dir); err != nil {
		return err
	}
	for _, p := range m.pending {
		if err := os.Rename(p[0], p[1]); err != nil {
			return err
		}
	}
	m.pending = m.pending[:0]
	return fsyncPath(filepath.Join(m.dir, "cur"))
}

// limitReader bounds r to n bytes; n < 0 means r ends by itself (POP3).
func limitReader(r io.Reader, n int64) io.Reader {
	if n < 0 {
		return r
	}
	return io.LimitReader(r, n)
}

// maildirInfo maps IMAP system flags to maildir info letters, sorted.
func maildirInfo(flags []string) string {
	letters := map[string]byte{`\Draft`: 'D', `\Flagged`: 'F', `\Answered`: 'R', `\Seen`: 'S', `\Deleted`: 'T'}
	var out []byte
	for _, f := range flags {
		if l, ok := letters[f]; ok {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return string(out)
}

// mboxSink appends mboxrd messages (From line, Status lines, escaped body)
// to one file per folder through a buffer, with one fsync per folder.
type mboxSink struct {
	root string
	f    *os.File
	w    *bufio.Writer
	buf  []byte
}

func (m *mboxSink) BeginFolder(name string) error {
	parts := strings.Split(name, "/")
	for i := range parts[:len(parts)-1] {
		parts[i] += ".sbd"
	}
	path := filepath.Join(append([]string{m.root}, parts...)...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	m.f = f
	if m.w == nil {
		m.w = bufio.NewWriterSize(f, 256<<10)
		m.buf = make([]byte, 256<<10)
	} else {
		m.w.Reset(f)
	}
	return nil
}

func (m *mboxSink) Message(r io.Reader, n int64, prefix []byte) error {
	flags, date := fetchMeta(prefix)
	if date.IsZero() {
		date = corpusBase
	}
	fmt.Fprintf(m.w, "From MAILER-DAEMON %s\n", date.UTC().Format(time.ANSIC))
	status, xstatus := mboxStatus(flags)
	fmt.Fprintf(m.w, "Status: %s\nX-Status: %s\n", status, xstatus)
	last, err := m.copyEscaped(limitReader(r, n))
	if err != nil {
		return err
	}
	if last != '\n' {
		m.w.WriteByte('\n')
	}
	return m.w.WriteByte('\n')
}

// copyEscaped copies r to the mbox with mboxrd quoting (a '>' before every
// line matching >*From ), a buffer at a time rather than a line at a time:
// it searches each buffer for "From " and looks back for a line start.
// Only the incomplete last line of a buffer is carried to the next read.
func (m *mboxSink) copyEscaped(r io.Reader) (last byte, err error) {
	buf := m.buf
	carry, bol := 0, true
	last = '\n'
	for {
		k, rerr := io.ReadAtLeast(r, buf[carry:], 1)
		data := buf[:carry+k]
		eof := rerr != nil
		if eof && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return last, rerr
		}
		end := bytes.LastIndexByte(data, '\n') + 1
		if eof || (end == 0 && len(data) == len(buf)) {
			end = len(data) // all of it: the end, or a line longer than buf
		}
		m.writeQuoted(data[:end], bol)
		if end > 0 {
			last = data[end-1]
			bol = last == '\n'
		}
		carry = copy(buf, data[end:])
		if eof {
			return last, nil
		}
	}
}

func (m *mboxSink) writeQuoted(chunk []byte, bol bool) {
	start := 0
	for i := 0; ; {
		j := bytes.Index(chunk[i:], []byte("From "))
		if j < 0 {
			break
		}
		pos := i + j
		k := pos
		for k > 0 && chunk[k-1] == '>' {
			k--
		}
		if (k == 0 && bol) || (k > 0 && chunk[k-1] == '\n') {
			m.w.Write(chunk[start:k])
			m.w.WriteByte('>')
			start = k
		}
		i = pos + 5
	}
	m.w.Write(chunk[start:])
}

// mboxNeedsEscape reports a line of the form >*From (mboxrd quoting).
func mboxNeedsEscape(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}

func mboxStatus(flags []string) (status, xstatus string) {
	status = "O"
	for _, f := range flags {
		switch f {
		case `\Seen`:
			status = "RO"
		case `\Answered`:
			xstatus += "A"
		case `\Flagged`:
			xstatus += "F"
		case `\Draft`:
			xstatus += "T"
		case `\Deleted`:
			xstatus += "D"
		}
	}
	return status, xstatus
}

func (m *mboxSink) EndFolder() error {
	if err := m.w.Flush(); err != nil {
		return err
	}
	if err := m.f.Sync(); err != nil {
		return err
	}
	return m.f.Close()
}

// syncFS flushes the filesystem holding path: one call for all the files
// of a folder instead of one fsync each.
func syncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
