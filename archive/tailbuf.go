package archive

import "os"

// tailBuffer collects what is appended to the end of a file and writes it
// in large positional writes: an mbox gets one write per buffer-full
// instead of one or more per message. Until flushed, the bytes exist only
// here; Commit flushes before it syncs, so nothing the index will point
// at is left in memory, and a crash loses only what no commit covered
// (which the source sends again).
type tailBuffer struct {
	f   *os.File
	off int64  // file offset of buf[0]
	buf []byte // pending bytes; never grows past its capacity
}

func newTailBuffer(f *os.File, off int64, size int) *tailBuffer {
	return &tailBuffer{f: f, off: off, buf: make([]byte, 0, size)}
}

// end is the offset the next byte goes to.
func (t *tailBuffer) end() int64 { return t.off + int64(len(t.buf)) }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if len(t.buf) == 0 && len(p) >= cap(t.buf) {
			// Large and nothing pending: straight to the file.
			m, err := t.f.WriteAt(p, t.off)
			t.off += int64(m)
			return n + m, err
		}
		m := copy(t.buf[len(t.buf):cap(t.buf)], p)
		t.buf = t.buf[:len(t.buf)+m]
		n += m
		p = p[m:]
		if len(t.buf) == cap(t.buf) {
			if err := t.Flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (t *tailBuffer) WriteString(s string) (int, error) {
	// From and status lines, separators: short, so they nearly always
	// fit what is left, and then go in without a conversion to []byte.
	if len(s) < cap(t.buf)-len(t.buf) {
		t.buf = append(t.buf, s...)
		return len(s), nil
	}
	return t.Write([]byte(s))
}

// Flush writes the pending bytes to the file.
func (t *tailBuffer) Flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	m, err := t.f.WriteAt(t.buf, t.off)
	t.off += int64(m)
	t.buf = t.buf[:copy(t.buf, t.buf[m:])]
	return err
}

// holds reports whether any byte before offset end is still unwritten.
func (t *tailBuffer) holds(end int64) bool {
	return len(t.buf) > 0 && end > t.off
}

// reset forgets what is pending and puts the end at off (the file has
// been cut there).
func (t *tailBuffer) reset(off int64) {
	t.buf = t.buf[:0]
	t.off = off
}

// cut drops everything from offset to on: what is still buffered is
// forgotten, and the file is truncated if part of it was written already.
func (t *tailBuffer) cut(to int64) error {
	if to >= t.off {
		t.buf = t.buf[:min(int64(len(t.buf)), to-t.off)]
		return nil
	}
	t.buf = t.buf[:0]
	t.off = to
	return t.f.Truncate(to)
}
