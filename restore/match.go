package restore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"

	"github.com/mailark/mailark/archive"
)

// How a message is recognised on the target.
//
// A message is identified by its Message-ID and its size: the same
// Message-ID on bytes of another size is another message (a re-sent draft,
// a list copy with a footer). Messages without a Message-ID (old POP mail,
// some drafts) are identified by a digest of the header fields that name
// them (Date, From, To, Cc, Subject) and their size.
//
// Sizes are compared as the target counts them: a server may store a
// message with bare LF line ends (Dovecot's maildir, an mbox from a mail
// client) as CRLF and report RFC822.SIZE accordingly, so an archive message
// also matches a server copy whose size is that of its CRLF form. That
// form is only computed when the plain sizes disagree.
//
// Matching counts copies: each server copy matches one archive message, so
// two identical archive messages need two server copies.

// digestFields are the header fields of the header digest, in order.
var digestFields = []string{"date", "from", "to", "cc", "subject"}

// identity is the match key of a message apart from its size.
func identityOf(messageID, digest string) string {
	if id := normalizeMessageID(messageID); id != "" {
		return "id:" + id
	}
	if digest != "" {
		return "hd:" + digest
	}
	return ""
}

// normalizeMessageID reduces a Message-ID header value to the <...> token
// it carries, so that folding and comments do not make two copies differ.
func normalizeMessageID(v string) string {
	v = strings.Join(strings.Fields(v), " ")
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i : i+j+1]
		}
	}
	return v
}

// headerFields reads a message header (up to the first empty line, at most
// maxHeader bytes) and returns the unfolded value of the first occurrence
// of each wanted field (lower-case names).
func headerFields(r io.Reader, wanted ...string) map[string]string {
	const maxHeader = 256 << 10
	want := map[string]bool{}
	for _, w := range wanted {
		want[w] = true
	}
	out := map[string]string{}
	br := bufio.NewReader(io.LimitReader(r, maxHeader))
	current := ""
	var value strings.Builder
	flush := func() {
		if current != "" {
			if _, dup := out[current]; !dup {
				out[current] = strings.Join(strings.Fields(value.String()), " ")
			}
		}
		current = ""
		value.Reset()
	}
	for {
		line, err := br.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			break // the empty line that ends the header, or the end of the message
		}
		switch {
		case trimmed[0] == ' ' || trimmed[0] == '\t':
			if current != "" {
				value.WriteString(" " + trimmed)
			}
		default:
			flush()
			if name, v, ok := strings.Cut(trimmed, ":"); ok && want[strings.ToLower(strings.TrimSpace(name))] {
				current = strings.ToLower(strings.TrimSpace(name))
				value.WriteString(v)
			}
		}
		if err != nil {
			break
		}
	}
	flush()
	return out
}

// headerDigest is the digest of a header for messages without Message-ID.
func headerDigest(r io.Reader) string {
	fields := headerFields(r, digestFields...)
	h := sha256.New()
	for _, f := range digestFields {
		io.WriteString(h, f+":"+fields[f]+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// crlfSize returns the size of a message once every bare LF and bare CR is
// made a CRLF, as servers that normalise line ends store it.
func crlfSize(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var n, extra int64
	var prev byte
	for {
		chunk, err := br.ReadSlice('\n')
		for i, c := range chunk {
			switch {
			case c == '\n' && prev != '\r':
				extra++
			case prev == '\r' && c != '\n':
				extra++
			}
			prev = chunk[i]
		}
		n += int64(len(chunk))
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, err
		}
	}
	if prev == '\r' {
		extra++
	}
	return n + extra, nil
}

// candidate is one archive message being matched against a target folder.
type candidate struct {
	folder   string // archive folder
	meta     archive.Meta
	identity string
	ledger   bool  // the ledger says it was uploaded to this target
	crlf     int64 // size in CRLF form; 0 until computed
}

// serverMessage is what the target has of one message.
type serverMessage struct {
	UID       uint32
	Size      int64
	MessageID string
	Digest    string // header digest, only for messages without Message-ID
	Flags     []string
	identity  string
}

// matchResult pairs archive candidates with server copies.
type matchResult struct {
	upload    []*candidate // not on the target and not in the ledger
	present   []*candidate // matched a server copy
	ledger    []*candidate // skipped because the ledger lists them
	pairs     map[*candidate]*serverMessage
	unmatched []*serverMessage // server copies no archive message claimed
}

// match pairs candidates (in the order given) with server copies. Ledger
// entries claim copies first, so that a copy uploaded by an interrupted
// run is not also counted for an identical, not yet uploaded message.
// crlf computes a candidate's CRLF size when plain sizes disagree.
func match(cands []*candidate, server []*serverMessage, crlf func(*candidate) (int64, error)) (*matchResult, error) {
	pool := map[string][]*serverMessage{}
	for _, s := range server {
		if s.identity != "" {
			pool[s.identity] = append(pool[s.identity], s)
		}
	}
	res := &matchResult{pairs: map[*candidate]*serverMessage{}}
	claim := func(c *candidate) (*serverMessage, error) {
		copies := pool[c.identity]
		if c.identity == "" || len(copies) == 0 {
			return nil, nil
		}
		if i := indexSize(copies, c.meta.Size); i >= 0 {
			return take(pool, c.identity, i), nil
		}
		if c.crlf == 0 {
			n, err := crlf(c)
			if err != nil {
				return nil, err
			}
			c.crlf = n
		}
		if i := indexSize(copies, c.crlf); i >= 0 {
			return take(pool, c.identity, i), nil
		}
		return nil, nil
	}
	for _, pass := range []bool{true, false} {
		for _, c := range cands {
			if c.ledger != pass {
				continue
			}
			s, err := claim(c)
			if err != nil {
				return nil, err
			}
			if s != nil {
				res.pairs[c] = s
			}
			switch {
			case c.ledger:
				res.ledger = append(res.ledger, c)
			case s != nil:
				res.present = append(res.present, c)
			default:
				res.upload = append(res.upload, c)
			}
		}
	}
	claimed := map[*serverMessage]bool{}
	for _, s := range res.pairs {
		claimed[s] = true
	}
	for _, s := range server {
		if !claimed[s] {
			res.unmatched = append(res.unmatched, s)
		}
	}
	return res, nil
}

func indexSize(copies []*serverMessage, size int64) int {
	for i, s := range copies {
		if s.Size == size {
			return i
		}
	}
	return -1
}

func take(pool map[string][]*serverMessage, id string, i int) *serverMessage {
	copies := pool[id]
	s := copies[i]
	pool[id] = append(copies[:i:i], copies[i+1:]...)
	return s
}

// headerBytesDigest digests header bytes as the server returned them
// (BODY[HEADER.FIELDS (...)]).
func headerBytesDigest(b []byte) string {
	if !bytes.HasSuffix(b, []byte("\n\n")) && !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		b = append(append([]byte{}, b...), "\r\n"...)
	}
	return headerDigest(bytes.NewReader(b))
}
