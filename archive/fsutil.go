package archive

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mailark/mailark/internal/mailerr"
)

// Modes of everything the archive creates: mail is private.
const (
	fileMode fs.FileMode = 0o600
	dirMode  fs.FileMode = 0o700
)

var (
	umaskOnce      sync.Once
	umaskHidesUser bool
)

// needChmod reports whether the process umask strips owner bits, in which
// case files and directories are chmod'ed after creation so they still end
// up exactly 0600/0700. Read once from /proc (Linux); when that fails we
// chmod always, which is merely slower.
func needChmod() bool {
	umaskOnce.Do(func() {
		umaskHidesUser = true
		f, err := os.Open("/proc/self/status")
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			v, ok := strings.CutPrefix(sc.Text(), "Umask:")
			if !ok {
				continue
			}
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err == nil {
				umaskHidesUser = mask&0o700 != 0
			}
			return
		}
	})
	return umaskHidesUser
}

// createExclusive creates a new file 0600 for writing; it fails if the
// file exists. It calls open(2) itself and wraps the descriptor with
// os.NewFile: os.OpenFile would also try to register the file with the
// network poller, which fails for regular files and costs four more
// system calls per file (one per message in a maildir).
func createExclusive(path string) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(fileMode.Perm()))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if needChmod() {
		if err := f.Chmod(fileMode); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// openAppendable opens (creating 0600 if missing) a file for reading and
// writing at explicit offsets.
func openAppendable(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	if needChmod() {
		if err := f.Chmod(fileMode); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// mkdirAll creates path and any missing parents with mode 0700 and makes
// each new directory entry durable by syncing its parent.
func mkdirAll(path string) error {
	st, err := os.Stat(path)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", path)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(path)
	if parent != path {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if needChmod() {
		if err := os.Chmod(path, dirMode); err != nil {
			return err
		}
	}
	return syncDir(parent)
}

// syncDir makes renames, creations and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content: temp file in the same directory, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+randomHex(6))
	f, err := createExclusive(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return hex.EncodeToString(b)
}

// kindError is a one-line error that is several kinds at once (an archive
// sentinel and the mailerr kind that sets the exit code) without repeating
// their texts after the message.
type kindError struct {
	msg   string
	kinds []error
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Unwrap() []error { return e.kinds }

// kinded formats a message as an error of the given kinds.
func kinded(kinds []error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kinds: kinds}
}

var (
	usageBadSpec    = []error{mailerr.ErrUsage, ErrBadSpec}
	usageNotArchive = []error{mailerr.ErrUsage, ErrNotArchive}
	lockedByAnother = []error{mailerr.ErrLocked, ErrLocked}
)

// renameFile is os.Rename without its Lstat of the target (which os.Rename
// makes to refuse replacing a directory with a file, and which costs a
// system call per message): every caller renames to a file name.
func renameFile(from, to string) error {
	if err := unix.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}
