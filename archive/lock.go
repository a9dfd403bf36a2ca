package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/gofrs/flock"

	"github.com/mailark/mailark/internal/mailerr"
)

// lockPollInterval is how often a waiting Open retries the lock.
const lockPollInterval = 100 * time.Millisecond

// lockHolder is what the lock file says about the run holding it. The
// lock itself is an flock(2) on the file, so the kernel releases it when
// the holder dies, however it dies: a stale lock cannot outlive its process.
type lockHolder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

func (h lockHolder) String() string {
	if h.PID == 0 {
		return "another process (holder not yet recorded)"
	}
	since := h.Since.Local().Format("15:04")
	if time.Since(h.Since) > 20*time.Hour {
		since = h.Since.Local().Format("2006-01-02 15:04")
	}
	return fmt.Sprintf("pid %d on %s since %s", h.PID, h.Host, since)
}

// acquireLock takes the exclusive archive lock at path, polling up to wait.
// On success it records this process as the holder.
func acquireLock(ctx context.Context, path, root string, wait time.Duration) (*flock.Flock, error) {
	fl := flock.New(path, flock.SetPermissions(fileMode))
	deadline := time.Now().Add(wait)
	for {
		ok, err := fl.TryLock()
		if err != nil {
			return nil, mailerr.E(mailerr.ErrLocalIO, err, "cannot lock archive %s", root)
		}
		if ok {
			break
		}
		if !time.Now().Before(deadline) {
			holder := readLockHolder(path)
			return nil, kinded(lockedByAnother,
				"archive %s is locked by %s; another mailark run is using it (wait, or --lock-wait 10m)", root, holder)
		}
		select {
		case <-ctx.Done():
			return nil, mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "gave up waiting for the lock on archive %s", root)
		case <-time.After(min(lockPollInterval, time.Until(deadline))):
		}
	}
	if err := writeLockHolder(path); err != nil {
		fl.Unlock()
		return nil, mailerr.E(mailerr.ErrLocalIO, err, "cannot write lock file of archive %s", root)
	}
	return fl, nil
}

// writeLockHolder records this process in the lock file. It goes through a
// second descriptor: flock belongs to the first one and stays held.
func writeLockHolder(path string) error {
	host, _ := os.Hostname()
	data, err := json.Marshal(lockHolder{PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readLockHolder(path string) lockHolder {
	var h lockHolder
	data, err := os.ReadFile(path)
	if err == nil {
		_ = json.Unmarshal(data, &h) // a holder mid-write reads as unknown
	}
	return h
}
