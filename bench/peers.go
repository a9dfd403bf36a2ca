package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// peerTool is one peer program and the Debian package that provides it.
type peerTool struct {
	Binary  string
	Package string
}

var peerTools = []peerTool{
	{"mbsync", "isync"},
	{"mpop", "mpop"},
	{"offlineimap", "offlineimap3"},
	{"getmail", "getmail6"},
}

// ensurePeers installs the Debian packages of missing peers (as root) and
// returns, per binary, its version line or why it is unavailable.
func ensurePeers(ctx context.Context, logf func(string, ...any)) map[string]string {
	var missing []string
	for _, p := range peerTools {
		if _, err := exec.LookPath(p.Binary); err != nil {
			missing = append(missing, p.Package)
		}
	}
	if len(missing) > 0 {
		if os.Geteuid() != 0 {
			logf("peers missing (%s) and not root: their scenarios are skipped", strings.Join(missing, " "))
		} else {
			logf("installing peer packages: %s", strings.Join(missing, " "))
			if err := aptInstall(ctx, missing); err != nil {
				logf("apt-get install failed: %v", err)
			}
		}
	}
	versions := map[string]string{}
	for _, p := range peerTools {
		if _, err := exec.LookPath(p.Binary); err != nil {
			versions[p.Binary] = "unavailable: " + p.Package + " not installed"
			continue
		}
		versions[p.Binary] = peerVersion(p.Binary)
	}
	return versions
}

func aptInstall(ctx context.Context, pkgs []string) error {
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, lastLines(string(out), 3))
		}
		return nil
	}
	if install() == nil {
		return nil
	}
	// A fresh machine has no package lists yet.
	if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, lastLines(string(out), 3))
	}
	return install()
}

func peerVersion(bin string) string {
	flag := "--version"
	cmd := exec.Command(bin, flag)
	out, _ := cmd.CombinedOutput()
	line := strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	if line == "" {
		return bin
	}
	return line
}

// endpoint is where a peer connects: host, port and the account.
type endpoint struct {
	Host string
	Port int
	User string
	Pass string
}

// writeConfig writes a peer's config file 0600 (it holds the password).
func writeConfig(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), 0o600)
}

// mbsyncFetchConfig pulls every folder of ep into the maildir tree dir
// (INBOX at dir/INBOX, nested folders as nested directories, like
// mailark's maildir layout). fsync false turns off its default FSync.
func mbsyncFetchConfig(ep endpoint, dir string, fsync bool) string {
	global := ""
	if !fsync {
		global = "FSync no\n\n"
	}
	return global + mbsyncAccount("far", ep) + fmt.Sprintf(`
MaildirStore near
Path %[1]s/
Inbox %[1]s/INBOX
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
SyncState *
CopyArrivalDate yes
`, dir)
}

// mbsyncPushConfig pushes the maildir tree dir to the (empty) account ep,
// skipping mailark's sidecar directory.
func mbsyncPushConfig(ep endpoint, dir string) string {
	return mbsyncAccount("far", ep) + fmt.Sprintf(`
MaildirStore near
Path %[1]s/
Inbox %[1]s/INBOX
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns * !.mailark
Create Far
Sync Push
SyncState *
CopyArrivalDate yes
`, dir)
}

func mbsyncAccount(name string, ep endpoint) string {
	return fmt.Sprintf(`IMAPAccount %[1]s-acct
Host %[2]s
Port %[3]d
User %[4]s
Pass %[5]s
SSLType None
AuthMechs LOGIN

IMAPStore %[1]s
Account %[1]s-acct
`, name, ep.Host, ep.Port, ep.User, ep.Pass)
}

// mpopConfig fetches ep's inbox, keeping the mail on the server, into
// delivery ("mbox FILE" or "maildir DIR"), remembering UIDLs in uidls.
func mpopConfig(ep endpoint, delivery, uidls string) string {
	return fmt.Sprintf(`account bench
host %s
port %d
tls off
auth user
user %s
password %s
keep on
received_header off
uidls_file %s
delivery %s

account default : bench
`, ep.Host, ep.Port, ep.User, ep.Pass, uidls, delivery)
}

// getmailPOP3Config fetches ep's inbox with getmail6 into an mboxrd file,
// leaving mail on the server and remembering what it saw.
func getmailPOP3Config(ep endpoint, mbox string) string {
	return fmt.Sprintf(`[retriever]
type = SimplePOP3Retriever
server = %s
port = %d
username = %s
password = %s

[destination]
type = Mboxrd
path = %s

[options]
verbose = 0
read_all = false
delete = false
received = false
delivered_to = false
`, ep.Host, ep.Port, ep.User, ep.Pass, mbox)
}

// offlineIMAPConfig pulls every folder of ep into a maildir tree, read-only
// on the server, with OfflineIMAP's default fsync.
func offlineIMAPConfig(ep endpoint, dir string) string {
	return fmt.Sprintf(`[general]
accounts = bench
metadata = %[1]s/meta
ui = quiet

[Account bench]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %[1]s/mail
sep = /

[Repository remote]
type = IMAP
remotehost = %[2]s
remoteport = %[3]d
remoteuser = %[4]s
remotepass = %[5]s
ssl = no
starttls = no
readonly = True
`, dir, ep.Host, ep.Port, ep.User, ep.Pass)
}
