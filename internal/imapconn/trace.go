package imapconn

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// tracer writes the protocol of one connection, both directions marked,
// to the account's trace writer (--verbose). It never writes a secret:
// LOGIN and AUTHENTICATE arguments are replaced by <redacted>, and so is
// every client line until the server has answered that command (SASL
// responses, a password sent as a literal). Literal data (message bodies)
// is elided to its size, long lines are shortened, and control
// characters a server might send are escaped so a trace cannot mess up a
// terminal.
type tracer struct {
	mu        sync.Mutex
	out       io.Writer
	id        int
	sensitive string // tag of a LOGIN/AUTHENTICATE the server has not answered yet
}

const traceLineMax = 300

var authCommand = regexp.MustCompile(`(?i)^(\S+ (?:LOGIN|AUTHENTICATE(?: \S+)?))(?: |$)`)

func newTracer(out io.Writer, id int) *tracer {
	if out == nil {
		return nil
	}
	return &tracer{out: out, id: id}
}

func (t *tracer) client(l line) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.sensitive != "":
		t.write("C:", l, []byte("<redacted>"), true)
		return
	case !l.continued:
		if m := authCommand.FindSubmatch(l.head); m != nil {
			if tag, ok := commandTag(l.head); ok {
				t.sensitive = tag
			}
			t.write("C:", l, append(append([]byte{}, m[1]...), " <redacted>"...), true)
			return
		}
	}
	t.write("C:", l, l.head, false)
}

func (t *tracer) server(l line) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !l.continued && t.sensitive != "" {
		if tag, ok := responseTag(l.head); ok && tag == t.sensitive {
			t.sensitive = ""
		}
	}
	t.write("S:", l, l.head, false)
}

func (t *tracer) note(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "imap[%d] -- %s\n", t.id, fmt.Sprintf(format, args...))
}

// write emits one trace line in a single Write call, so lines of several
// connections sharing one writer do not interleave within a line.
func (t *tracer) write(dir string, l line, text []byte, redacted bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "imap[%d] %s ", t.id, dir)
	if l.continued {
		fmt.Fprintf(&b, "<%d bytes> ", l.litBefore)
	}
	shown := text
	if len(shown) > traceLineMax {
		shown = shown[:traceLineMax]
	}
	writeEscaped(&b, shown)
	if !redacted && (len(text) > len(shown) || !l.whole) {
		fmt.Fprintf(&b, "... (%d bytes)", l.length)
	}
	b.WriteByte('\n')
	t.out.Write([]byte(b.String()))
}

func writeEscaped(b *strings.Builder, p []byte) {
	for _, c := range p {
		switch {
		case c == '\t' || (c >= 0x20 && c != 0x7f):
			b.WriteByte(c)
		default:
			fmt.Fprintf(b, `\x%02x`, c)
		}
	}
}
