package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/pop3conn"
)

// Deciding which server messages the archive already holds.
//
// Evidence that server message m is archived message A, strongest last:
//
//   - by UIDL: m's UIDL is A's (or an alias of A's key) and m's LIST size
//     is consistent with A's size. This is what every POP3 client trusts,
//     and it costs nothing, so it decides what to skip.
//   - by header: the bytes of `TOP m 0` (the whole header block) are the
//     first bytes of A. A header block carries the delivery's Received
//     lines and Message-ID, so two different messages do not share one.
//   - by content: the SHA-256 of m's RETR bytes is A's (servers without
//     TOP).
//
// Skipping m needs evidence by UIDL or header. Deleting m needs evidence
// by content from this session (m was fetched now, or retrieved and
// hashed): a server that reuses a UIDL, even for a message with the same
// header, can never make mailark delete a message the archive lacks.
// A UIDL whose archived copies all differ in size from m shows that the
// server reuses UIDLs; then every UIDL match of the run is confirmed.
// Messages without a UIDL match are compared with the archive's unclaimed
// messages of a consistent size (a server that regenerated its UIDLs, or
// has none) and fetched only when none matches.

// maxProbeBytes bounds a TOP reply taken as a header block.
const maxProbeBytes = 1 << 20

// maxCandidates bounds the archived messages one server message is
// compared with.
const maxCandidates = 32

// archiveView indexes the committed INBOX for matching.
type archiveView struct {
	folder  *archive.Folder
	byUIDL  map[string][]*archive.Meta
	bySize  map[int64][]*archive.Meta
	byKey   map[string]*archive.Meta
	aliases map[string]string
	claimed map[string]bool // archive keys matched to a server message in this run
	prefix  map[prefixKey][32]byte
}

type prefixKey struct {
	key string
	n   int64
}

func newArchiveView(f *archive.Folder) *archiveView {
	v := &archiveView{
		folder:  f,
		byUIDL:  map[string][]*archive.Meta{},
		bySize:  map[int64][]*archive.Meta{},
		byKey:   map[string]*archive.Meta{},
		claimed: map[string]bool{},
		prefix:  map[prefixKey][32]byte{},
	}
	if f == nil {
		return v
	}
	entries := f.Entries()
	for i := range entries {
		a := &entries[i]
		v.byKey[a.Key] = a
		v.bySize[a.Size] = append(v.bySize[a.Size], a)
		if a.UIDL != "" {
			v.byUIDL[a.UIDL] = append(v.byUIDL[a.UIDL], a)
		}
	}
	v.aliases = f.State().UIDLAliases
	return v
}

// sizeConsistent: LIST may report 2 bytes less than RETR delivers (a
// message without a final line end gets one).
func sizeConsistent(archived, listed int64) bool {
	return archived == listed || archived == listed+2
}

// byUIDLOf lists the archived messages m's UIDL names, alias first.
func (v *archiveView) byUIDLOf(uidl string) []*archive.Meta {
	if uidl == "" {
		return nil
	}
	list := v.byUIDL[uidl]
	if key, ok := v.aliases[uidl]; ok {
		if a := v.byKey[key]; a != nil {
			list = append([]*archive.Meta{a}, list...)
		}
	}
	return list
}

// matchUIDL claims the archived message m's UIDL names. reused reports
// that the UIDL is archived but only with other sizes.
func (v *archiveView) matchUIDL(m *pop3Msg) (a *archive.Meta, reused bool) {
	list := v.byUIDLOf(m.UIDL)
	for _, a := range list {
		if !v.claimed[a.Key] && sizeConsistent(a.Size, m.Size) {
			v.claimed[a.Key] = true
			return a, false
		}
	}
	return nil, len(list) > 0
}

// candidates are the unclaimed archived messages m may be.
func (v *archiveView) candidates(m *pop3Msg) []*archive.Meta {
	var out []*archive.Meta
	add := func(list []*archive.Meta) {
		for _, a := range list {
			if len(out) < maxCandidates && !v.claimed[a.Key] && !containsMeta(out, a) {
				out = append(out, a)
			}
		}
	}
	add(v.byUIDLOf(m.UIDL))
	add(v.bySize[m.Size])
	add(v.bySize[m.Size+2])
	return out
}

func containsMeta(list []*archive.Meta, a *archive.Meta) bool {
	for _, b := range list {
		if b == a {
			return true
		}
	}
	return false
}

// probe is what a comparison learned of one server message.
type probe struct {
	n    int64    // bytes seen
	sum  [32]byte // their SHA-256
	full bool     // the whole message (RETR), not the header (TOP)
}

// same reports whether the probed server message is archived message a.
func (v *archiveView) same(a *archive.Meta, p probe) (bool, error) {
	if p.full {
		return p.n == a.Size && hex.EncodeToString(p.sum[:]) == a.SHA256, nil
	}
	if p.n == 0 || p.n > a.Size {
		return false, nil
	}
	sum, err := v.prefixSum(a.Key, p.n)
	return err == nil && sum == p.sum, err
}

// prefixSum is the SHA-256 of the first n bytes of an archived message.
func (v *archiveView) prefixSum(key string, n int64) ([32]byte, error) {
	pk := prefixKey{key, n}
	if sum, ok := v.prefix[pk]; ok {
		return sum, nil
	}
	rc, err := v.folder.Open(key)
	if err != nil {
		return [32]byte{}, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, rc, n); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	h.Sum(sum[:0])
	v.prefix[pk] = sum
	return sum, nil
}

// plan decides, message by message, what is archived already, and
// returns the messages to fetch in server order.
func (r *pop3Run) plan(ctx context.Context) ([]*pop3Msg, error) {
	v := r.known
	suspect := false
	for _, m := range r.msgs {
		if r.noUIDL {
			continue
		}
		a, reused := v.matchUIDL(m)
		m.archived = a
		if reused && !suspect {
			suspect = true
			r.warn("%s reuses UIDLs: %q now names a message of another size than the archived one; every message is checked by its header this run",
				r.acct.Addr(), m.UIDL)
		}
	}
	tried := map[probeKey]bool{}
	probes := map[int]*probe{} // the strongest comparison made of each message
	for {
		batch, full := r.needProbe(tried, suspect)
		if len(batch) == 0 {
			break
		}
		got, err := r.probe(ctx, batch, full)
		if err != nil {
			return nil, err
		}
		for _, m := range batch {
			tried[probeKey{m.Num, full}] = true
			if p := got[m.Num]; p != nil {
				probes[m.Num] = p
			}
		}
		if err := r.checkMatches(batch, probes); err != nil {
			return nil, err
		}
		if err := r.matchUnknown(probes); err != nil {
			return nil, err
		}
	}
	var fetch []*pop3Msg
	for _, m := range r.msgs {
		if m.archived == nil {
			fetch = append(fetch, m)
		}
	}
	return fetch, nil
}

// probeKey records which comparison of a message was tried.
type probeKey struct {
	num  int
	full bool
}

// needProbe lists the messages to compare next, and how: by content
// (full) for archived messages about to be deleted, by header (TOP) for
// UIDL matches when UIDLs are being reused and for unknown messages with
// candidates in the archive. One kind per round; rounds repeat because a
// failed match frees an archived message to be a candidate elsewhere,
// and a header match may still need a content proof before deletion.
func (r *pop3Run) needProbe(tried map[probeKey]bool, suspect bool) (batch []*pop3Msg, full bool) {
	canTop := r.conn.Has("TOP")
	var header, content []*pop3Msg
	for _, m := range r.msgs {
		switch {
		case m.archived != nil && !m.proven && r.wantsDeletion(m.archived) && !r.opt.DryRun:
			if !tried[probeKey{m.Num, true}] {
				content = append(content, m)
			}
		case m.archived != nil && !m.confirmed && suspect,
			m.archived == nil && len(r.known.candidates(m)) > 0:
			if !tried[probeKey{m.Num, false}] && !tried[probeKey{m.Num, true}] {
				if canTop {
					header = append(header, m)
				} else {
					content = append(content, m)
				}
			}
		}
	}
	if len(header) > 0 {
		return header, false
	}
	return content, true
}

// checkMatches checks archived matches against their probes. A mismatch
// means the server gave an archived message's UIDL to another message:
// that one is new, and the archived one is free to match elsewhere.
func (r *pop3Run) checkMatches(batch []*pop3Msg, probes map[int]*probe) error {
	v := r.known
	for _, m := range batch {
		p := probes[m.Num]
		if m.archived == nil || p == nil {
			continue
		}
		ok, err := v.same(m.archived, *p)
		if err != nil {
			return err
		}
		if ok {
			m.confirmed = true
			m.proven = p.full
			continue
		}
		r.warn("UIDL %q on %s now names a different message than the one archived under it; the new message is fetched", m.UIDL, r.acct.Addr())
		delete(v.claimed, m.archived.Key)
		m.archived, m.confirmed, m.proven = nil, false, false
	}
	return nil
}

// matchUnknown looks for each probed, unmatched message among its
// candidates.
func (r *pop3Run) matchUnknown(probes map[int]*probe) error {
	v := r.known
	for _, m := range r.msgs {
		p := probes[m.Num]
		if m.archived != nil || p == nil {
			continue
		}
		for _, a := range v.candidates(m) {
			ok, err := v.same(a, *p)
			if err != nil {
				return err
			}
			if ok {
				v.claimed[a.Key] = true
				m.archived, m.confirmed, m.proven = a, true, p.full
				r.res.Duplicates++
				r.log.Debug("server message already archived", "msg", m.Num, "uidl", m.UIDL, "key", a.Key)
				break
			}
		}
	}
	return nil
}

// probe compares by header (TOP n 0) or by content (RETR, hashed and
// discarded). A message the server refuses is left out of the result.
func (r *pop3Run) probe(ctx context.Context, batch []*pop3Msg, full bool) (map[int]*probe, error) {
	out := make(map[int]*probe, len(batch))
	useTop := !full
	fn := func(num int, body io.Reader) error {
		h := sha256.New()
		n, err := io.CopyN(h, body, maxProbeBytes+1)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if useTop && n > maxProbeBytes {
			return nil // not a header block one can compare: left unknown
		}
		if !useTop {
			more, err := io.Copy(h, body)
			if err != nil {
				return err
			}
			n += more
		}
		p := &probe{n: n, full: !useTop}
		h.Sum(p.sum[:0])
		out[num] = p
		return nil
	}
	todo := nums(batch)
	for len(todo) > 0 {
		var err error
		if useTop {
			err = r.conn.Top(ctx, todo, 0, fn)
		} else {
			err = r.conn.Retr(ctx, todo, fn)
		}
		var re *pop3conn.ReplyError
		if err == nil || !errors.As(err, &re) || re.Num == 0 {
			return out, err
		}
		r.log.Debug("server refused a comparison", "msg", re.Num, "reply", re.Text)
		i := slices.Index(todo, re.Num)
		if i < 0 {
			return out, err
		}
		todo = todo[i+1:]
	}
	return out, nil
}
