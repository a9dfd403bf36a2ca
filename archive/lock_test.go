package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

const lockChildEnv = "MAILARK_ARCHIVE_LOCK_CHILD"

// TestLockChild holds an archive open until killed (helper process).
func TestLockChild(t *testing.T) {
	cfg := os.Getenv(lockChildEnv)
	if cfg == "" {
		t.Skip("helper process for TestLock")
	}
	f, dir, _ := strings.Cut(cfg, "|")
	a, err := Open(context.Background(), spec(Format(f), dir), Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	fo, _ := a.CreateFolder("INBOX", "")
	fo.Append(strings.NewReader("Subject: uncommitted\r\n\r\nx\r\n"), AppendInfo{})
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestLock(t *testing.T) {
	eachFormat(t, func(t *testing.T, f Format) {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), lockChildEnv+"="+string(f)+"|"+dir)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "locked\n" {
			t.Fatalf("child: %q", line)
		}

		start := time.Now()
		_, err := Open(context.Background(), spec(f, dir), Options{})
		if !errors.Is(err, ErrLocked) || !errors.Is(err, mailerr.ErrLocked) {
			t.Fatalf("second Open: %v, want ErrLocked", err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("Open without LockWait took %v", time.Since(start))
		}
		host, _ := os.Hostname()
		want := fmt.Sprintf("is locked by pid %d on %s since ", cmd.Process.Pid, host)
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--lock-wait") {
			t.Errorf("error %q does not name the holder (%q)", err, want)
		}
		if mailerr.ExitCode(err) != mailerr.ExitLocked {
			t.Errorf("exit code %d", mailerr.ExitCode(err))
		}

		// LockWait waits, then fails the same way.
		start = time.Now()
		_, err = Open(context.Background(), spec(f, dir), Options{LockWait: 300 * time.Millisecond})
		if !errors.Is(err, ErrLocked) || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("Open with LockWait: %v after %v", err, time.Since(start))
		}
		// Read-only opens need no lock.
		ro, err := Open(context.Background(), spec(f, dir), Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("read-only Open while locked: %v", err)
		}
		ro.Close()

		// A waiting Open takes the lock over once the holder dies.
		go func() {
			time.Sleep(200 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
		}()
		a, err := Open(context.Background(), spec(f, dir), Options{LockWait: 10 * time.Second})
		if err != nil {
			t.Fatalf("Open after the holder was killed: %v", err)
		}
		defer a.Close()
		fo, err := a.Folder("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(fo.Entries()); n != 0 {
			t.Errorf("the dead holder's uncommitted message is indexed (%d)", n)
		}
		assertNothingUnindexed(t, fo)
		cmd.Wait()
	})
}

func TestLockWaitCancelled(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, Maildir, dir, Options{})
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Open(ctx, spec(Maildir, dir), Options{LockWait: time.Hour})
	if !errors.Is(err, mailerr.ErrInterrupted) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestLockReleasedByClose(t *testing.T) {
	dir := t.TempDir()
	a := mustOpen(t, Mbox, dir, Options{})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := mustOpen(t, Mbox, dir, Options{})
	b.Close()
}
