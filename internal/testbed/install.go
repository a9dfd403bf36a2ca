package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// binaries are the Dovecot programs the test bed runs.
type binaries struct {
	dovecot, doveadm string
}

type vmailIDs struct{ uid, gid int }

// Debian's package names; they pull in dovecot-core.
var debianPackages = []string{"dovecot-imapd", "dovecot-pop3d"}

var (
	installOnce sync.Once
	installErr  error
)

// unavailable ends a test that cannot get a Dovecot: a skip on a
// developer's machine, a failure in CI, where a skipped integration test
// would hide that nothing was tested.
func unavailable(t testing.TB, reason string) {
	t.Helper()
	if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
		t.Fatalf("testbed: %s (CI=%s, so this is an error, not a skip)", reason, ci)
	}
	t.Skipf("testbed: %s", reason)
}

// requireDovecot returns the Dovecot programs, installing the packages
// first when they are missing and the test runs as root.
func requireDovecot(t testing.TB) binaries {
	t.Helper()
	if os.Geteuid() != 0 {
		// Dovecot has to switch to the mail user for every mail access.
		if _, err := findDovecot(); err != nil {
			unavailable(t, "Dovecot is not installed and installing it needs root: apt-get install "+strings.Join(debianPackages, " "))
		}
		unavailable(t, "a private Dovecot needs root (it switches to the mail user "+VmailUser+")")
	}
	if b, err := findDovecot(); err == nil {
		return b
	}
	installOnce.Do(func() { installErr = installDovecot() })
	if installErr != nil {
		unavailable(t, installErr.Error())
	}
	b, err := findDovecot()
	if err != nil {
		unavailable(t, "after installing "+strings.Join(debianPackages, " ")+": "+err.Error())
	}
	return b
}

// findDovecot locates dovecot and doveadm and checks that the IMAP and POP3
// servers (separate packages on Debian) are there too.
func findDovecot() (binaries, error) {
	var b binaries
	var err error
	if b.dovecot, err = lookPath("dovecot"); err != nil {
		return b, err
	}
	if b.doveadm, err = lookPath("doveadm"); err != nil {
		return b, err
	}
	for _, dir := range []string{"/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot"} {
		if isExecutable(filepath.Join(dir, "imap")) && isExecutable(filepath.Join(dir, "pop3")) {
			return b, nil
		}
	}
	return b, errors.New("Dovecot's imap and pop3 programs are missing (packages " + strings.Join(debianPackages, ", ") + ")")
}

// lookPath also searches the sbin directories, which are often missing from
// the PATH of non-login shells.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// machineLock serialises installation and user creation between test
// binaries that `go test ./...` runs in parallel.
func machineLock() (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), "mailark-testbed.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// installDovecot installs the Debian packages with apt-get. A temporary
// policy-rc.d that answers 101 ("action forbidden") keeps the packages'
// post-install scripts from starting the system Dovecot on ports 143/110.
func installDovecot() error {
	unlock, err := machineLock()
	if err != nil {
		return fmt.Errorf("locking for installation: %w", err)
	}
	defer unlock()
	if _, err := findDovecot(); err == nil {
		return nil // another test binary installed it while we waited
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return errors.New("Dovecot is not installed and there is no apt-get to install " + strings.Join(debianPackages, " "))
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Lstat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# Temporary: keep services from starting during a package installation.\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", policy, err)
		}
		defer os.Remove(policy)
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	run := func(args ...string) error {
		cmd := exec.Command(aptGet, append([]string{"-q", "-y", "-o", "DPkg::Lock::Timeout=300"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, tail(string(out), 5))
		}
		return nil
	}
	if err := run("update"); err != nil {
		return err
	}
	return run(append([]string{"install", "--no-install-recommends"}, debianPackages...)...)
}

var (
	vmailOnce sync.Once
	vmail     vmailIDs
	vmailErr  error
)

// ensureVmailUser returns the uid and gid of VmailUser, creating the system
// account when it does not exist.
func ensureVmailUser() (vmailIDs, error) {
	vmailOnce.Do(func() { vmail, vmailErr = lookupOrCreateVmail() })
	return vmail, vmailErr
}

func lookupOrCreateVmail() (vmailIDs, error) {
	if ids, err := lookupVmail(); err == nil {
		return ids, nil
	}
	unlock, err := machineLock()
	if err != nil {
		return vmailIDs{}, err
	}
	defer unlock()
	if ids, err := lookupVmail(); err == nil {
		return ids, nil
	}
	useradd, err := lookPath("useradd")
	if err != nil {
		return vmailIDs{}, fmt.Errorf("creating the mail user %s: %w", VmailUser, err)
	}
	out, err := exec.Command(useradd, "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", VmailUser).CombinedOutput()
	if err != nil {
		return vmailIDs{}, fmt.Errorf("useradd %s: %v: %s", VmailUser, err, strings.TrimSpace(string(out)))
	}
	return lookupVmail()
}

func lookupVmail() (vmailIDs, error) {
	u, err := user.Lookup(VmailUser)
	if err != nil {
		return vmailIDs{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return vmailIDs{}, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return vmailIDs{}, err
	}
	if uid == 0 {
		return vmailIDs{}, fmt.Errorf("user %s has uid 0; Dovecot will not deliver mail as root", VmailUser)
	}
	return vmailIDs{uid, gid}, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
