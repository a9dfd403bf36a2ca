package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// The index of a folder is an append-only log of JSON lines, one record
// per line, written by Commit after the data it describes is durable:
//
//	{"op":"add","key":"…","size":…,"sha256":"…","mid":"…","flags":[…],"date":"…",…}
//	{"op":"flags","key":"…","flags":[…]}
//	{"op":"uid","key":"…","uid":…}          (the source renumbered it; no "uid": none)
//
// A line without its final newline is the torn tail of a Commit a crash
// interrupted; it is dropped on load. Any other bad line means the file was
// damaged and the folder is not trusted (ErrCorrupt).

type record struct {
	Op    string   `json:"op"`
	Key   string   `json:"key"`
	Size  int64    `json:"size,omitempty"`
	SHA   string   `json:"sha256,omitempty"`
	MID   string   `json:"mid,omitempty"`
	Flags []string `json:"flags,omitzero"`  // nil only in uid records
	Date  string   `json:"date,omitempty"`  // INTERNALDATE, RFC 3339 with the source's offset
	UID   uint32   `json:"uid,omitempty"`   // IMAP source UID
	UIDL  string   `json:"uidl,omitempty"`  // POP3 source UIDL
	Added int64    `json:"added,omitempty"` // unix seconds
	// mbox location: From line at Off, Pre bytes of From and status lines,
	// then Esc bytes of the mboxrd-escaped message, Disk bytes in all up to
	// the next From line.
	Off  int64 `json:"off,omitempty"`
	Pre  int64 `json:"pre,omitempty"`
	Esc  int64 `json:"esc,omitempty"`
	Disk int64 `json:"disk,omitempty"`
}

// encodeStrings returns a copy whose server-given strings survive JSON.
func (r record) encodeStrings() record {
	r.MID, r.UIDL, r.Flags = encodeLossless(r.MID), encodeLossless(r.UIDL), encodeLosslessAll(r.Flags)
	return r
}

func (r *record) decodeStrings() bool {
	var ok1, ok2, ok3 bool
	r.MID, ok1 = decodeLossless(r.MID)
	r.UIDL, ok2 = decodeLossless(r.UIDL)
	r.Flags, ok3 = decodeLosslessAll(r.Flags)
	return ok1 && ok2 && ok3
}

const (
	opAdd   = "add"
	opFlags = "flags"
	opUID   = "uid"
)

// entry is the in-memory form of one indexed message, kept compact because
// a folder may hold 100,000 of them: the digest is binary, flag sets and
// zones are shared.
type entry struct {
	key   string
	mid   string
	uidl  string
	flags string // interned, sorted, space-joined
	date  time.Time
	added int64
	size  int64
	sum   [32]byte
	uid   uint32
	loc   mboxLoc
	// gone marks an indexed message whose file another program removed.
	gone bool
}

type mboxLoc struct{ off, pre, esc, disk int64 }

func (l mboxLoc) end() int64 { return l.off + l.disk }

// index is the loaded log with lookup maps. Multi-valued keys (digest,
// Message-ID) chain entries through next arrays, newest first.
type index struct {
	entries []entry
	byKey   map[string]int32
	byUID   map[uint32]int32
	byUIDL  map[string]int32
	bySum   map[uint64]int32 // by the digest's first 8 bytes; chains hold the rest
	byMID   map[string]int32
	nextSum []int32
	nextMID []int32
	count   int // entries not gone
	bytes   int64

	flagSets map[string]string
	zones    map[int]*time.Location
	joinBuf  []byte
}

func newIndex() *index { return newIndexSized(0) }

// newIndexSized allocates for about n entries, so loading a big folder
// does not grow every map and slice a dozen times.
func newIndexSized(n int) *index {
	return &index{
		entries:  make([]entry, 0, n),
		nextSum:  make([]int32, 0, n),
		nextMID:  make([]int32, 0, n),
		byKey:    make(map[string]int32, n),
		byUID:    make(map[uint32]int32, n),
		byUIDL:   map[string]int32{},
		bySum:    make(map[uint64]int32, n),
		byMID:    make(map[string]int32, n),
		flagSets: map[string]string{},
		zones:    map[int]*time.Location{},
	}
}

// bytesPerRecord is a typical index line, for sizing.
const bytesPerRecord = 230

// indexFile is an open index log.
type indexFile struct {
	path string
	f    *os.File // nil when read-only
	size int64    // bytes of complete records
}

// loadIndex reads the log at path into a new index. With repair it also
// opens the file for appending and cuts a torn last line off.
func loadIndex(path string, repair bool) (*index, *indexFile, error) {
	var f *os.File
	var err error
	if repair {
		f, err = openAppendable(path)
	} else {
		f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return newIndex(), &indexFile{path: path}, nil
		}
	}
	if err != nil {
		return nil, nil, err
	}
	var sizeHint int
	if st, err := f.Stat(); err == nil {
		sizeHint = int(st.Size() / bytesPerRecord)
	}
	idx := newIndexSized(sizeHint)
	good, torn, err := idx.read(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	ixf := &indexFile{path: path, size: good}
	if !repair {
		f.Close()
		return idx, ixf, nil
	}
	if torn {
		if err := truncateSync(f, good); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	ixf.f = f
	return idx, ixf, nil
}

// read loads every complete record; it returns the byte length of those
// and whether a torn line followed them.
func (idx *index) read(r io.Reader) (good int64, torn bool, err error) {
	br := bufio.NewReaderSize(r, 256<<10)
	lineNo := 0
	flagCache := map[string][]string{}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A record longer than the buffer: only absurd Message-IDs or
			// flag lists get here. Collect it the slow way.
			rest, err2 := br.ReadBytes('\n')
			line = append(append([]byte(nil), line...), rest...)
			err = err2
		}
		if errors.Is(err, io.EOF) {
			return good, len(line) > 0, nil
		}
		if err != nil {
			return good, false, err
		}
		lineNo++
		var rec record
		if err := parseRecordCached(line, &rec, flagCache); err != nil {
			return good, false, fmt.Errorf("%w: index line %d: %v", ErrCorrupt, lineNo, err)
		}
		if !rec.decodeStrings() {
			return good, false, fmt.Errorf("%w: index line %d: bad encoded string", ErrCorrupt, lineNo)
		}
		if err := idx.apply(&rec); err != nil {
			return good, false, fmt.Errorf("%w: index line %d: %v", ErrCorrupt, lineNo, err)
		}
		good += int64(len(line))
	}
}

// apply adds one record to the in-memory index.
func (idx *index) apply(rec *record) error {
	switch rec.Op {
	case opAdd:
		e, err := idx.entryFrom(rec)
		if err != nil {
			return err
		}
		return idx.add(e)
	case opFlags:
		i, ok := idx.byKey[rec.Key]
		if !ok {
			return fmt.Errorf("flags for unknown key %q", rec.Key)
		}
		idx.entries[i].flags = idx.internFlags(rec.Flags)
		return nil
	case opUID:
		i, ok := idx.byKey[rec.Key]
		if !ok {
			return fmt.Errorf("uid for unknown key %q", rec.Key)
		}
		idx.setUID(i, rec.UID)
		return nil
	}
	return fmt.Errorf("unknown op %q", rec.Op)
}

func (idx *index) entryFrom(rec *record) (entry, error) {
	if rec.Key == "" {
		return entry{}, errors.New("record without key")
	}
	sum, ok := decodeSum(rec.SHA)
	if !ok {
		return entry{}, fmt.Errorf("bad sha256 %q", rec.SHA)
	}
	date, err := idx.parseDate(rec.Date)
	if err != nil {
		return entry{}, err
	}
	return entry{
		key: rec.Key, mid: rec.MID, uidl: rec.UIDL, flags: idx.internFlags(rec.Flags),
		date: date, added: rec.Added, size: rec.Size, sum: sum, uid: rec.UID,
		loc: mboxLoc{off: rec.Off, pre: rec.Pre, esc: rec.Esc, disk: rec.Disk},
	}, nil
}

// parseDate reads an RFC 3339 date and shares one Location per offset.
func (idx *index) parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad date %q", s)
	}
	_, off := t.Zone()
	loc, ok := idx.zones[off]
	if !ok {
		loc = time.FixedZone("", off)
		if off == 0 {
			loc = time.UTC
		}
		idx.zones[off] = loc
	}
	return t.In(loc), nil
}

func formatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// internFlags stores a flag set once per distinct set: most messages
// share one of a handful.
func (idx *index) internFlags(flags []string) string {
	buf := idx.joinBuf[:0]
	for i, f := range flags {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, f...)
	}
	idx.joinBuf = buf
	if s, ok := idx.flagSets[string(buf)]; ok { // no allocation for the lookup
		return s
	}
	joined := string(buf)
	idx.flagSets[joined] = joined
	return joined
}

func (idx *index) add(e entry) error {
	i := int32(len(idx.entries))
	if _, dup := idx.byKey[e.key]; dup {
		return fmt.Errorf("key %q added twice", e.key)
	}
	idx.byKey[e.key] = i
	idx.entries = append(idx.entries, e)
	if e.uid != 0 {
		idx.byUID[e.uid] = i
	}
	if e.uidl != "" {
		idx.byUIDL[e.uidl] = i
	}
	idx.nextSum = append(idx.nextSum, chainPush(idx.bySum, sumPrefix(e.sum), i))
	next := int32(-1)
	if e.mid != "" {
		next = chainPush(idx.byMID, e.mid, i)
	}
	idx.nextMID = append(idx.nextMID, next)
	idx.count++
	idx.bytes += e.size
	return nil
}

// setUID gives entry i a new source UID. The old UID stops naming it,
// unless a later entry holds that UID by now.
func (idx *index) setUID(i int32, uid uint32) {
	e := &idx.entries[i]
	if old := e.uid; old != 0 && idx.byUID[old] == i {
		delete(idx.byUID, old)
	}
	e.uid = uid
	if uid != 0 {
		idx.byUID[uid] = i
	}
}

// chainPush makes i the head of key's chain and returns the old head.
func chainPush[K comparable](m map[K]int32, k K, i int32) int32 {
	old, ok := m[k]
	m[k] = i
	if !ok {
		return -1
	}
	return old
}

// markGone hides an entry whose message is no longer on disk.
func (idx *index) markGone(i int32) {
	e := &idx.entries[i]
	if e.gone {
		return
	}
	e.gone = true
	idx.count--
	idx.bytes -= e.size
}

func (idx *index) lookup(m map[string]int32, k string) (int32, bool) {
	i, ok := m[k]
	if !ok || idx.entries[i].gone {
		return -1, false
	}
	return i, true
}

// chain lists the live entries of a chain in index order.
func (idx *index) chain(head int32, next []int32) []int32 {
	var out []int32
	for i := head; i >= 0; i = next[i] {
		if !idx.entries[i].gone {
			out = append(out, i)
		}
	}
	slices.Reverse(out)
	return out
}

func (e *entry) meta() Meta {
	m := Meta{
		Key: e.key, Size: e.size, SHA256: hex.EncodeToString(e.sum[:]), MessageID: e.mid,
		Date: e.date, UID: e.uid, UIDL: e.uidl,
	}
	if e.flags != "" {
		m.Flags = strings.Split(e.flags, " ")
	}
	if e.added != 0 {
		m.Added = time.Unix(e.added, 0).UTC()
	}
	return m
}

// appendRecords writes records as one chunk and fsyncs. On failure the
// file is cut back so that no partial line stays in front of later records.
func (ixf *indexFile) appendRecords(recs []record) error {
	if ixf.f == nil {
		return ErrReadOnly
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range recs {
		rec := recs[i].encodeStrings()
		if err := enc.Encode(&rec); err != nil {
			return err
		}
	}
	if _, err := ixf.f.WriteAt(buf.Bytes(), ixf.size); err != nil {
		_ = ixf.f.Truncate(ixf.size)
		return err
	}
	if err := ixf.f.Sync(); err != nil {
		_ = ixf.f.Truncate(ixf.size)
		return err
	}
	ixf.size += int64(buf.Len())
	return nil
}

func (ixf *indexFile) close() error {
	if ixf.f == nil {
		return nil
	}
	err := ixf.f.Close()
	ixf.f = nil
	return err
}

// truncateSync cuts f to size and makes that durable.
func truncateSync(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// entryFlags returns the flags of entry i as a slice.
func (idx *index) entryFlags(i int32) []string {
	if f := idx.entries[i].flags; f != "" {
		return strings.Split(f, " ")
	}
	return nil
}

// decodeSum parses 64 hex digits (either case) without allocating.
func decodeSum(s string) ([32]byte, bool) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, false
	}
	for i := range 32 {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return sum, false
		}
		sum[i] = hi<<4 | lo
	}
	return sum, true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// sumPrefix is the map key for a digest: 8 bytes tell SHA-256 digests
// apart as well as 32 in practice, at a quarter of the memory, and
// bySHA256 compares the whole digest anyway.
func sumPrefix(sum [32]byte) uint64 {
	return binary.LittleEndian.Uint64(sum[:8])
}

// bySHA256 lists the live entries with this digest in index order.
func (idx *index) bySHA256(sum [32]byte) []int32 {
	head, ok := idx.bySum[sumPrefix(sum)]
	if !ok {
		return nil
	}
	var out []int32
	for _, i := range idx.chain(head, idx.nextSum) {
		if idx.entries[i].sum == sum {
			out = append(out, i)
		}
	}
	return out
}
