package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"
)

// store is one folder's messages on disk, in one format. The Folder on top
// of it owns the index and the order of durability; a store only writes,
// syncs and reads message data and keeps what other mail programs see
// (file names, status lines) in step with the flags.
type store interface {
	// prepare creates the folder's files if missing (idempotent).
	prepare() error
	// reconcile matches the disk against the committed index after load.
	// With repair it removes what was never committed and fixes what it
	// safely can; without, it only works around it.
	reconcile(idx *index, repair bool) error
	// append writes one message streamed from src and fills in msg's key
	// and location. On error nothing of the message is left behind.
	append(src io.Reader, msg *pendingMsg) error
	// setFlags updates what other programs see of a message's flags
	// (maildir at once, mbox after the next Commit).
	setFlags(key string, flags []string) error
	// startSync fixes what the next commit makes durable: everything
	// appended so far. It runs under the folder's lock and returns the
	// slow part, run without the lock so that appends go on meanwhile
	// (nil when there is nothing to sync), and finish, run under the
	// lock again with the outcome: on failure what run covered counts as
	// unsynced again.
	startSync() (run func() error, finish func(ok bool), err error)
	// afterCommit runs once the index holds what sync made durable.
	afterCommit(idx *index) error
	// rollback removes everything appended since the last sync (used by
	// Close when the caller did not Commit).
	rollback() error
	// open streams one message's original bytes.
	open(e *entry) (io.ReadCloser, error)
	close() error
}

// pendingMsg carries a message through store.append.
type pendingMsg struct {
	date  time.Time // INTERNALDATE, never zero
	flags []string  // normalized
	key   string    // set by append
	loc   mboxLoc   // set by the mbox store
}

// storeEnv is what a store needs from its archive.
type storeEnv struct {
	log     *slog.Logger
	folder  string // archive name, for messages
	lostDir string // where data that cannot be placed is kept instead of deleted
}

// verifyingReader checks at EOF that a message read back is exactly what
// was indexed, so silent damage on disk surfaces as ErrCorrupt instead of
// being uploaded.
type verifyingReader struct {
	r      io.Reader
	closer io.Closer
	h      hash.Hash
	n      int64
	want   *entry
	folder string
}

func newVerifyingReader(r io.Reader, c io.Closer, e *entry, folder string) *verifyingReader {
	return &verifyingReader{r: r, closer: c, h: sha256.New(), want: e, folder: folder}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.size {
		return n, v.mismatch()
	}
	if err == io.EOF {
		var sum [32]byte
		v.h.Sum(sum[:0])
		if v.n != v.want.size || sum != v.want.sum {
			return n, v.mismatch()
		}
	}
	return n, err
}

func (v *verifyingReader) mismatch() error {
	return fmt.Errorf("%w: message %s in folder %q does not match its index (size or SHA-256 %s); the file was changed outside mailark",
		ErrCorrupt, v.want.key, v.folder, hex.EncodeToString(v.want.sum[:8]))
}

func (v *verifyingReader) Close() error { return v.closer.Close() }

// countingWriter counts bytes passed through.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
