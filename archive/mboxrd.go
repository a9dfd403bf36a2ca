package archive

import (
	"bytes"
	"io"
)

// mboxrd quoting: a line of a message that matches ^>*From  is written with
// one more '>' and read back with one less, so every message survives the
// trip byte for byte, whatever its line endings. Lines end at '\n' only, as
// for every mbox reader.
//
// rdCodec is a streaming state machine over that rule: it never needs a
// whole line in memory, so a 100 MB line or a line of 70,000 '>' followed
// by "From " is handled like any other.
type rdCodec struct {
	unescape bool
	scanning bool  // at a line start, still matching the >*From  prefix
	gt       int64 // '>' seen in the prefix, not yet written
	matched  int   // bytes of "From " matched after them
}

const fromPrefix = "From "

// fromPrefixBytes is fromPrefix for writers without WriteString, which
// io.WriteString would make copy it on every call.
var fromPrefixBytes = []byte(fromPrefix)

func newRDCodec(unescape bool) *rdCodec {
	return &rdCodec{unescape: unescape, scanning: true}
}

// write transforms p into w.
func (c *rdCodec) write(w io.Writer, p []byte) error {
	for len(p) > 0 {
		if !c.scanning {
			// Pass through, in one write, every line up to the next
			// that could start with >*From : one beginning with '>' or
			// 'F', or one whose first byte is not in p yet.
			end := 0
			for {
				j := bytes.IndexByte(p[end:], '\n')
				if j < 0 {
					_, err := w.Write(p)
					return err
				}
				end += j + 1
				if end == len(p) || p[end] == '>' || p[end] == 'F' {
					break
				}
			}
			if _, err := w.Write(p[:end]); err != nil {
				return err
			}
			p = p[end:]
			c.scanning, c.gt, c.matched = true, 0, 0
			continue
		}
		b := p[0]
		switch {
		case c.matched == 0 && b == '>':
			c.gt++
			p = p[1:]
		case b == fromPrefix[c.matched]:
			c.matched++
			p = p[1:]
			if c.matched == len(fromPrefix) {
				if err := c.emitQuoted(w); err != nil {
					return err
				}
				c.scanning = false
			}
		default:
			// Not a From line: write back what was held and go on with
			// the current byte as ordinary line content.
			if err := c.emitHeld(w); err != nil {
				return err
			}
			c.scanning = false
		}
	}
	return nil
}

// emitQuoted writes a matched >*From  prefix with one '>' added or removed.
func (c *rdCodec) emitQuoted(w io.Writer) error {
	gt := c.gt + 1
	if c.unescape {
		gt = max(c.gt-1, 0)
	}
	if err := writeGT(w, gt); err != nil {
		return err
	}
	_, err := w.Write(fromPrefixBytes)
	return err
}

// emitHeld writes a partial prefix unchanged.
func (c *rdCodec) emitHeld(w io.Writer) error {
	if err := writeGT(w, c.gt); err != nil {
		return err
	}
	_, err := w.Write(fromPrefixBytes[:c.matched])
	c.gt, c.matched = 0, 0
	return err
}

// flush writes a prefix still held at the end of the message.
func (c *rdCodec) flush(w io.Writer) error {
	if !c.scanning {
		return nil
	}
	return c.emitHeld(w)
}

var gtBlock = bytes.Repeat([]byte{'>'}, 4096)

// writeGT writes n '>' characters.
func writeGT(w io.Writer, n int64) error {
	block := gtBlock
	for n > 0 {
		k := min(n, int64(len(block)))
		if _, err := w.Write(block[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// rdReader streams the unquoted form of an mboxrd-quoted region.
type rdReader struct {
	src   io.Reader
	codec *rdCodec
	out   bytes.Buffer
	buf   []byte
	err   error
}

func newRDReader(src io.Reader) *rdReader {
	return &rdReader{src: src, codec: newRDCodec(true), buf: make([]byte, 32<<10)}
}

func (r *rdReader) Read(p []byte) (int, error) {
	for r.out.Len() == 0 && r.err == nil {
		n, err := r.src.Read(r.buf)
		if werr := r.codec.write(&r.out, r.buf[:n]); werr != nil {
			return 0, werr
		}
		if err == io.EOF {
			if ferr := r.codec.flush(&r.out); ferr != nil {
				return 0, ferr
			}
		}
		r.err = err
	}
	if r.out.Len() > 0 {
		return r.out.Read(p)
	}
	return 0, r.err
}
