package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// trash stands in for deleting files between runs. On ext4 without a
// journal (the root file system of many VMs, this bench's machine among
// them) inode allocation passes over every inode freed in the last 60 s
// (360 s while its inode table block is dirty), reading each one's
// deletion time: fs/ext4/ialloc.c, recently_deleted(). Right after a run's
// thousands of files are deleted, the next run's thousands of creates pay
// for that scan: on this machine 3,000 maildir files took 0.3-1.0 s to
// create after such a deletion against 0.1 s without. That is a cost of
// the bench's own cleanup, not of the program measured, and it would
// shrink every ratio towards 1. So what a run leaves is moved aside, and
// deleted when the bench ends (or earlier, only if the disk runs short).
//
// Kept files keep their pages in the page cache, though: some 25 GB over a
// whole bench, which fills this machine's memory, and then every write
// waits for reclaim (a full fetch measured 0.81 s with the cache dropped,
// 1.06 s with it full of such pages). So once written back (after the
// sync before each run) their cached pages are dropped (evict).
type trash struct {
	dir     string
	minFree uint64 // bytes to keep free; below that the trash is emptied at once
	seq     int
	evicted int // entries up to this number have had their pages dropped
	emptied int // times the trash had to be emptied during the run
	logf    func(string, ...any)
}

func newTrash(dir string, minFree uint64, logf func(string, ...any)) (*trash, error) {
	// Left by an interrupted bench: deleted now, before anything is
	// measured.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &trash{dir: dir, minFree: minFree, logf: logf}, nil
}

// discard removes paths from where they are. A path on another file
// system than the trash is deleted.
func (t *trash) discard(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if t.short() {
			t.emptied++
			t.logf("disk space below %d GB: emptying the trash of earlier runs now", t.minFree>>30)
			if err := t.empty(); err != nil {
				return err
			}
		}
		t.seq++
		if err := os.Rename(p, filepath.Join(t.dir, fmt.Sprint(t.seq))); err != nil {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// short reports whether the trash's file system has less than minFree
// bytes available.
func (t *trash) short() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(t.dir, &st); err != nil {
		return false
	}
	return st.Bavail*uint64(st.Bsize) < t.minFree
}

// empty deletes what was discarded.
func (t *trash) empty() error {
	if err := os.RemoveAll(t.dir); err != nil {
		return err
	}
	t.evicted = t.seq // nothing left to evict
	return os.MkdirAll(t.dir, 0o755)
}

// close deletes the trash itself.
func (t *trash) close() error { return os.RemoveAll(t.dir) }

// evict drops the cached pages of what was discarded since the last call.
// Pages still dirty stay (DONTNEED does not write back), so it is called
// right after a sync.
func (t *trash) evict() {
	for ; t.evicted < t.seq; t.evicted++ {
		root := filepath.Join(t.dir, fmt.Sprint(t.evicted+1))
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if f, err := os.Open(p); err == nil {
				unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				f.Close()
			}
			return nil
		})
	}
}
