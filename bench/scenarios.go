package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mailark/mailark/internal/testbed"
)

// section is one block of the results table: the rows of one group.
type section struct {
	Title   string
	Rows    []row
	Skipped string // why the whole group did not run
}

// row is one scenario: a mailark variant and what it is compared with.
type row struct {
	Key      string // for the targets: "imap-maildir-0ms", "restore-rtt", ...
	Scenario string
	Work     func() corpusStats // messages and bytes moved by one run
	Mailark  *variant
	Peers    []*variant
	Raws     []*variant
	Limit    *variant // the raw limit for the same format ("raw + writes")
}

// net describes where a group's programs connect: direct, or through the
// latency proxy.
type netPath struct {
	Label    string
	IMAPPort int
	POP3Port int
}

func (b *bench) paths() (direct, slow netPath) {
	direct = netPath{"0 ms", b.srv.IMAPPort, b.srv.POP3Port}
	slow = netPath{fmt.Sprintf("+%d ms RTT", b.o.latency.Milliseconds()), b.imapProxy.Port(), b.pop3Proxy.Port()}
	return direct, slow
}

// runAll measures every group in order. The order matters: the
// incremental groups reuse the archives the full fetches left, restore
// pushes the maildir archive, and the 50-new group (which grows the
// account) comes last.
func (b *bench) runAll(ctx context.Context) error {
	direct, slow := b.paths()
	full := b.imapFullGroup(direct)
	steps := []func() (*group, section){
		func() (*group, section) { return full.g, full.s },
		func() (*group, section) { return b.imapNoopGroup(full) },
		func() (*group, section) { return b.pop3Group(direct) },
		func() (*group, section) { return b.pop3NoopGroup() },
		func() (*group, section) { return b.restoreGroup(direct, b.restoreSource(full)) },
		func() (*group, section) { return b.imapFullGroup(slow).pair() },
		func() (*group, section) { return b.pop3Group(slow) },
		func() (*group, section) { return b.restoreGroup(slow, b.restoreSource(full)) },
		func() (*group, section) { return b.imapNewGroup(full) },
		func() (*group, section) { return b.memoryGroup() },
	}
	for _, step := range steps {
		g, s := step()
		if !b.selected(g.Title) {
			continue
		}
		b.logf("== %s", g.Title)
		err := g.run(ctx, b.logf)
		b.sections = append(b.sections, s)
		if err != nil {
			return err
		}
	}
	return nil
}

// selected applies -only.
func (b *bench) selected(title string) bool {
	if b.o.only == "" {
		return true
	}
	for _, w := range strings.Split(b.o.only, ",") {
		if w != "" && strings.Contains(strings.ToLower(title), strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// fullFetch keeps the full-fetch group's variants: later groups continue
// from the archives they left.
type fullFetch struct {
	g                              *group
	s                              section
	path                           netPath
	mailarkMaildir, mailarkMbox    *variant
	rawMaildir                     *variant
	dirMaildir, dirMbox, dirMbsync string
	dirRawMaildir                  string
	mbsync                         *variant
}

func (f fullFetch) pair() (*group, section) { return f.g, f.s }

func (b *bench) out(parts ...string) string {
	return filepath.Join(append([]string{b.o.work, "out"}, parts...)...)
}

func slug(path netPath) string {
	if path.Label == "0 ms" {
		return "0ms"
	}
	return "rtt"
}

func (b *bench) imapFullGroup(path netPath) fullFetch {
	s := slug(path)
	f := fullFetch{path: path}
	f.dirMaildir = b.out(s, "mailark-maildir")
	f.dirMbox = b.out(s, "mailark-mbox")
	f.dirMbsync = b.out(s, "mbsync")
	f.dirRawMaildir = b.out(s, "raw-maildir")
	dirRawMbox := b.out(s, "raw-mbox")
	url := b.imapURL(accountUser, path.IMAPPort)
	all := func() int { return b.account.Messages }
	addr := fmt.Sprintf("%s:%d", b.srv.Host, path.IMAPPort)

	f.mailarkMaildir = b.mailarkFetch("mailark → maildir", url, "maildir", f.dirMaildir, true, all)
	f.mailarkMbox = b.mailarkFetch("mailark → mbox", url, "mbox", f.dirMbox, true, all)
	f.mbsync = b.mbsyncFetch("mbsync → maildir", path.IMAPPort, accountUser, f.dirMbsync, true, all)
	raw := b.rawVariant("raw fetch (discard)", "raw-imap", addr, accountUser, "none", "", all)
	f.rawMaildir = b.rawVariant("raw + maildir writes", "raw-imap", addr, accountUser, "maildir", f.dirRawMaildir, all)
	rawMbox := b.rawVariant("raw + mbox writes", "raw-imap", addr, accountUser, "mbox", dirRawMbox, all)
	// For reference (not the limit): the same plus the SHA-256 per message
	// that the archive contract asks for, the least any conforming client
	// can do.
	rawMboxSHA := b.rawVariant("raw + mbox writes + SHA-256", "raw-imap", addr, accountUser, "mbox+sha256", b.out(s, "raw-mbox-sha"), all)
	variants := []*variant{f.mailarkMaildir, f.mailarkMbox, f.mbsync, raw, f.rawMaildir, rawMbox, rawMboxSHA}
	peers := []*variant{f.mbsync}
	if path.Label == "0 ms" {
		// For reference only (not in the targets): what mbsync's fsync
		// per message costs on this disk.
		nofs := b.mbsyncFetchSync("mbsync → maildir, FSync no", path.IMAPPort, accountUser, b.out(s, "mbsync-nofsync"), true, false, all)
		variants = append(variants, nofs)
		peers = append(peers, nofs)
	}
	if b.o.slow && path.Label == "0 ms" {
		// One connection, no pipelining: at 20 ms RTT these take minutes,
		// so they are measured at 0 ms only.
		oi := b.offlineIMAPFetch("OfflineIMAP → maildir", path.IMAPPort, b.out(s, "offlineimap"), all)
		variants = append(variants, oi)
		peers = append(peers, oi)
	}
	f.g = &group{Title: "IMAP full fetch, " + path.Label, Reps: b.o.reps, Variants: variants}
	work := func() corpusStats { return b.account }
	f.s = section{Title: f.g.Title, Rows: []row{
		{Key: "imap-maildir-" + s, Scenario: "IMAP full fetch → maildir (" + path.Label + ")", Work: work, Mailark: f.mailarkMaildir,
			Peers: peers, Raws: []*variant{raw, f.rawMaildir}, Limit: f.rawMaildir},
		{Key: "imap-mbox-" + s, Scenario: "IMAP full fetch → mbox (" + path.Label + ")", Work: work, Mailark: f.mailarkMbox,
			Peers: []*variant{f.mbsync}, Raws: []*variant{raw, rawMbox, rawMboxSHA}, Limit: rawMbox},
	}}
	return f
}

func (b *bench) imapNoopGroup(full fullFetch) (*group, section) {
	url := b.imapURL(accountUser, full.path.IMAPPort)
	all := func() int { return b.account.Messages }
	mm := b.mailarkFetch("mailark maildir, nothing new", url, "maildir", full.dirMaildir, false, all)
	mb := b.mailarkFetch("mailark mbox, nothing new", url, "mbox", full.dirMbox, false, all)
	ms := b.mbsyncFetch("mbsync, nothing new", full.path.IMAPPort, accountUser, full.dirMbsync, false, all)
	requireDone(mm, full.mailarkMaildir)
	requireDone(mb, full.mailarkMbox)
	requireDone(ms, full.mbsync)
	g := &group{Title: "IMAP incremental, nothing new, 0 ms", Reps: b.o.reps, Variants: []*variant{mm, mb, ms}}
	none := func() corpusStats { return corpusStats{} }
	return g, section{Title: g.Title, Rows: []row{
		{Key: "noop-maildir", Scenario: "IMAP incremental, nothing new → maildir", Work: none, Mailark: mm, Peers: []*variant{ms}},
		{Key: "noop-mbox", Scenario: "IMAP incremental, nothing new → mbox", Work: none, Mailark: mb, Peers: []*variant{ms}},
	}}
}

func (b *bench) imapNewGroup(full fullFetch) (*group, section) {
	url := b.imapURL(accountUser, full.path.IMAPPort)
	all := func() int { return b.account.Messages }
	mm := b.mailarkFetch("mailark maildir, 50 new", url, "maildir", full.dirMaildir, false, all)
	mb := b.mailarkFetch("mailark mbox, 50 new", url, "mbox", full.dirMbox, false, all)
	ms := b.mbsyncFetch("mbsync, 50 new", full.path.IMAPPort, accountUser, full.dirMbsync, false, all)
	requireDone(mm, full.mailarkMaildir)
	requireDone(mb, full.mailarkMbox)
	requireDone(ms, full.mbsync)
	g := &group{Title: "IMAP incremental, 50 new, 0 ms", Reps: b.o.reps, Variants: []*variant{mm, mb, ms},
		BeforeRep: b.addNewMessages}
	added := func() corpusStats { return b.added }
	return g, section{Title: g.Title, Rows: []row{
		{Key: "new-maildir", Scenario: "IMAP incremental, 50 new → maildir", Work: added, Mailark: mm, Peers: []*variant{ms}},
		{Key: "new-mbox", Scenario: "IMAP incremental, 50 new → mbox", Work: added, Mailark: mb, Peers: []*variant{ms}},
	}}
}

// addNewMessages delivers 50 new messages (30 INBOX, 10 Sent, 10 in a
// nested folder) to the account before each rep of the 50-new group.
func (b *bench) addNewMessages(rep int) error {
	seed := uint64(corpusSeed + 1000*(rep+1))
	first := 100_000 + 100*rep
	specs := append(planFolder(seed, "INBOX", 30, first), planFolder(seed+1, "Sent", 10, first)...)
	specs = append(specs, planFolder(seed+2, "Lists/go-nuts", 10, first)...)
	dir := b.out("new-messages")
	if err := b.trash.discard(dir); err != nil {
		return err
	}
	st, err := writeStagingMaildir(dir, specs)
	if err != nil {
		return err
	}
	if err := b.importTree(accountUser, dir, "all"); err != nil {
		return err
	}
	b.added = st
	b.account.Messages += st.Messages
	b.account.Bytes += st.Bytes
	return nil
}

func (b *bench) pop3Group(path netPath) (*group, section) {
	s := slug(path)
	url := b.popURL(popUser, path.POP3Port)
	addr := fmt.Sprintf("%s:%d", b.srv.Host, path.POP3Port)
	all := func() int { return b.pop.Messages }
	mm := b.mailarkFetch("mailark → maildir", url, "maildir", b.out(s, "pop-mailark-maildir"), true, all)
	mb := b.mailarkFetch("mailark → mbox", url, "mbox", b.out(s, "pop-mailark-mbox"), true, all)
	pm := b.mpopFetch("mpop → maildir", path.POP3Port, "maildir", b.out(s, "mpop-maildir"), true, all)
	pb := b.mpopFetch("mpop → mbox", path.POP3Port, "mbox", b.out(s, "mpop-mbox"), true, all)
	raw := b.rawVariant("raw RETR (discard)", "raw-pop3", addr, popUser, "none", "", all)
	rawMaildir := b.rawVariant("raw RETR + maildir writes", "raw-pop3", addr, popUser, "maildir", b.out(s, "pop-raw-maildir"), all)
	rawMbox := b.rawVariant("raw RETR + mbox writes", "raw-pop3", addr, popUser, "mbox", b.out(s, "pop-raw-mbox"), all)
	variants := []*variant{mm, mb, pm, pb, raw, rawMaildir, rawMbox}
	mboxPeers := []*variant{pb}
	if b.o.getmail && path.Label == "0 ms" {
		gm := b.getmailFetch("getmail6 → mbox", path.POP3Port, b.out(s, "getmail"), all)
		variants = append(variants, gm)
		mboxPeers = append(mboxPeers, gm)
	}
	g := &group{Title: "POP3 full fetch, " + path.Label, Reps: b.o.reps, Variants: variants}
	work := func() corpusStats { return b.pop }
	return g, section{Title: g.Title, Rows: []row{
		{Key: "pop-maildir-" + s, Scenario: "POP3 full fetch → maildir (" + path.Label + ")", Work: work, Mailark: mm,
			Peers: []*variant{pm}, Raws: []*variant{raw, rawMaildir}, Limit: rawMaildir},
		{Key: "pop-mbox-" + s, Scenario: "POP3 full fetch → mbox (" + path.Label + ")", Work: work, Mailark: mb,
			Peers: mboxPeers, Raws: []*variant{raw, rawMbox}, Limit: rawMbox},
	}}
}

func (b *bench) pop3NoopGroup() (*group, section) {
	url := b.popURL(popUser, b.srv.POP3Port)
	all := func() int { return b.pop.Messages }
	mm := b.mailarkFetch("mailark maildir, nothing new", url, "maildir", b.out("0ms", "pop-mailark-maildir"), false, all)
	pm := b.mpopFetch("mpop maildir, nothing new", b.srv.POP3Port, "maildir", b.out("0ms", "mpop-maildir"), false, all)
	g := &group{Title: "POP3 incremental, nothing new, 0 ms", Reps: b.o.reps, Variants: []*variant{mm, pm}}
	none := func() corpusStats { return corpusStats{} }
	return g, section{Title: g.Title, Rows: []row{
		{Key: "pop-noop", Scenario: "POP3 incremental, nothing new → maildir", Work: none, Mailark: mm, Peers: []*variant{pm}},
	}}
}

// restoreSource is the maildir tree both restore programs push: mailark's
// own archive when mailark fetched one, else the raw client's tree (which
// mailark restore reads as a foreign maildir).
func (b *bench) restoreSource(full fullFetch) func() string {
	return func() string {
		if full.mailarkMaildir.usable() {
			return full.dirMaildir
		}
		return full.dirRawMaildir
	}
}

func (b *bench) restoreGroup(path netPath, source func() string) (*group, section) {
	s := slug(path)
	want := func() int { return b.account.Messages }
	mr := b.mailarkRestore("mailark restore", path.IMAPPort, source, want)
	mp := b.mbsyncPush("mbsync push", path.IMAPPort, source, b.out(s, "mbsync-push"), want)
	g := &group{Title: "Restore of the maildir archive into an empty account, " + path.Label, Reps: b.o.reps,
		Variants: []*variant{mr, mp}}
	return g, section{Title: g.Title, Rows: []row{
		{Key: "restore-" + s, Scenario: "Restore maildir → empty IMAP account (" + path.Label + ")", Work: func() corpusStats { return b.account },
			Mailark: mr, Peers: []*variant{mp}},
	}}
}

// memoryGroup fetches and restores the single 50 MB message.
func (b *bench) memoryGroup() (*group, section) {
	one := func() int { return 1 }
	imapDir := b.out("big", "mailark-imap")
	mi := b.mailarkFetch("mailark IMAP fetch", b.imapURL(bigUser, b.srv.IMAPPort), "maildir", imapDir, true, one)
	mp := b.mailarkFetch("mailark POP3 fetch", b.popURL(bigUser, b.srv.POP3Port), "maildir", b.out("big", "mailark-pop"), true, one)
	source := func() string { return imapDir }
	mr := b.mailarkRestore("mailark restore", b.srv.IMAPPort, source, one)
	if b.fetchMissing != "" && b.restoreMissing == "" {
		mr.Unavailable = "needs mailark fetch for its archive"
	}
	ms := b.mbsyncFetch("mbsync IMAP fetch", b.srv.IMAPPort, bigUser, b.out("big", "mbsync"), true, one)
	pm := b.mpopFetchAs("mpop POP3 fetch", b.srv.POP3Port, bigUser, "maildir", b.out("big", "mpop"), true, one)
	bigAddr := b.srv.IMAPAddr()
	rawI := b.rawVariant("raw IMAP fetch", "raw-imap", bigAddr, bigUser, "none", "", one)
	rawP := b.rawVariant("raw POP3 RETR", "raw-pop3", b.srv.POP3Addr(), bigUser, "none", "", one)
	g := &group{Title: "Memory: one 50 MB message, 0 ms", Reps: b.o.reps,
		Variants: []*variant{mi, mp, mr, ms, pm, rawI, rawP}}
	work := func() corpusStats { return b.big }
	return g, section{Title: g.Title, Rows: []row{
		{Key: "big-imap", Scenario: "50 MB message: IMAP fetch", Work: work, Mailark: mi, Peers: []*variant{ms}, Raws: []*variant{rawI}},
		{Key: "big-pop", Scenario: "50 MB message: POP3 fetch", Work: work, Mailark: mp, Peers: []*variant{pm}, Raws: []*variant{rawP}},
		{Key: "big-restore", Scenario: "50 MB message: restore", Work: work, Mailark: mr},
	}}
}

// requireDone makes an incremental variant depend on the full run that
// built its archive: without that archive the figure would be a full fetch.
func requireDone(incr, full *variant) {
	prepare := incr.Prepare
	incr.Prepare = func(rep int) error {
		if !full.usable() {
			return fmt.Errorf("no archive: %s did not complete", full.Name)
		}
		if prepare != nil {
			return prepare(rep)
		}
		return nil
	}
	if full.Unavailable != "" {
		incr.Unavailable = full.Unavailable
	}
}

// ---- variant constructors ----

func (b *bench) imapURL(account string, port int) string {
	return fmt.Sprintf("imap://%s@%s:%d", account, b.srv.Host, port)
}

func (b *bench) popURL(account string, port int) string {
	return fmt.Sprintf("pop3://%s@%s:%d", account, b.srv.Host, port)
}

func (b *bench) mailarkCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(b.mailark, append(args, "--progress", "never", "--quiet")...)
	cmd.Env = append(os.Environ(), "MAILARK_PASSWORD="+testbed.Password)
	return cmd
}

func (b *bench) mailarkFetch(name, url, format, dir string, fresh bool, want func() int) *variant {
	v := &variant{Name: name, Kind: kindMailark, Unavailable: b.fetchMissing}
	if fresh {
		v.Prepare = func(int) error { return b.trash.discard(dir) }
	}
	v.Command = func(int) *exec.Cmd { return b.mailarkCmd("fetch", url, format+":"+dir) }
	v.Check = func(int, string) error { return expectCount(format, dir, want()) }
	return v
}

func (b *bench) mailarkRestore(name string, port int, source func() string, want func() int) *variant {
	v := &variant{Name: name, Kind: kindMailark, Unavailable: b.restoreMissing}
	var target string
	v.Prepare = func(int) error {
		target = b.freshUser("mr")
		return nil
	}
	v.Command = func(int) *exec.Cmd {
		return b.mailarkCmd("restore", "maildir:"+source(), b.imapURL(target, port))
	}
	v.Check = func(int, string) error { return b.expectServerCount(target, want()) }
	return v
}

func (b *bench) expectServerCount(account string, want int) error {
	defer b.dropUserMail(account)
	got, err := b.serverCount(account)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("account %s holds %d messages, want %d", account, got, want)
	}
	return nil
}

func (b *bench) peerMissing(bin string) string {
	if v := b.peers[bin]; strings.HasPrefix(v, "unavailable") {
		return v
	}
	return ""
}

func (b *bench) endpoint(port int, account string) endpoint {
	return endpoint{Host: b.srv.Host, Port: port, User: account, Pass: testbed.Password}
}

// freshDir empties dir and creates the given subdirectories.
func (b *bench) freshDir(dir string, subs ...string) error {
	if err := b.trash.discard(dir); err != nil {
		return err
	}
	for _, s := range append(subs, "") {
		// 0755: getmail runs as an unprivileged user and must reach its dir.
		if err := os.MkdirAll(filepath.Join(dir, s), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) mbsyncFetch(name string, port int, account, dir string, fresh bool, want func() int) *variant {
	return b.mbsyncFetchSync(name, port, account, dir, fresh, true, want)
}

func (b *bench) mbsyncFetchSync(name string, port int, account, dir string, fresh, fsync bool, want func() int) *variant {
	mail, cfg := filepath.Join(dir, "mail"), filepath.Join(dir, "mbsyncrc")
	v := &variant{Name: name, Kind: kindPeer, Unavailable: b.peerMissing("mbsync"), Note: "mbsync: FSync yes (its default: one fsync per message file) unless the row says otherwise"}
	v.Prepare = func(int) error {
		if fresh {
			if err := b.freshDir(dir, "mail"); err != nil {
				return err
			}
		}
		return writeConfig(cfg, mbsyncFetchConfig(b.endpoint(port, account), mail, fsync))
	}
	v.Command = func(int) *exec.Cmd { return exec.Command("mbsync", "-c", cfg, "-a", "-q") }
	v.Check = func(int, string) error { return expectCount("maildir", mail, want()) }
	return v
}

func (b *bench) mbsyncPush(name string, port int, source func() string, dir string, want func() int) *variant {
	mail, cfg := filepath.Join(dir, "mail"), filepath.Join(dir, "mbsyncrc")
	v := &variant{Name: name, Kind: kindPeer, Unavailable: b.peerMissing("mbsync")}
	var target string
	v.Prepare = func(int) error {
		target = b.freshUser("ms")
		if err := b.freshDir(dir); err != nil {
			return err
		}
		// mbsync renames the files it pushes (it adds ",U=" UIDs): it gets
		// a hard-linked copy so the archive itself stays untouched.
		if out, err := exec.Command("cp", "-al", source(), mail).CombinedOutput(); err != nil {
			return fmt.Errorf("cp -al: %w: %s", err, out)
		}
		return writeConfig(cfg, mbsyncPushConfig(b.endpoint(port, target), mail))
	}
	v.Command = func(int) *exec.Cmd { return exec.Command("mbsync", "-c", cfg, "-a", "-q") }
	v.Check = func(int, string) error { return b.expectServerCount(target, want()) }
	return v
}

func (b *bench) mpopFetch(name string, port int, format, dir string, fresh bool, want func() int) *variant {
	return b.mpopFetchAs(name, port, popUser, format, dir, fresh, want)
}

func (b *bench) mpopFetchAs(name string, port int, account, format, dir string, fresh bool, want func() int) *variant {
	mail, cfg := filepath.Join(dir, "mail"), filepath.Join(dir, "mpoprc")
	delivery := "maildir " + mail
	if format == "mbox" {
		delivery = "mbox " + filepath.Join(mail, "INBOX")
	}
	v := &variant{Name: name, Kind: kindPeer, Unavailable: b.peerMissing("mpop")}
	v.Prepare = func(int) error {
		if fresh {
			if err := b.freshDir(dir, "mail/cur", "mail/new", "mail/tmp"); err != nil {
				return err
			}
		}
		return writeConfig(cfg, mpopConfig(b.endpoint(port, account), delivery, filepath.Join(dir, "uidls")))
	}
	v.Command = func(int) *exec.Cmd { return exec.Command("mpop", "-C", cfg, "-q", "bench") }
	v.Check = func(int, string) error { return expectCount(format, mail, want()) }
	return v
}

// getmailFetch runs getmail6 as the unprivileged user "nobody": as root
// it refuses to deliver ("refuse to deliver mail as root").
func (b *bench) getmailFetch(name string, port int, dir string, want func() int) *variant {
	mail, state := filepath.Join(dir, "mail"), filepath.Join(dir, "state")
	v := &variant{Name: name, Kind: kindPeer, Unavailable: b.peerMissing("getmail"),
		Note: "getmail6: run as nobody (it refuses to deliver as root); forks one delivery process per message"}
	uid, gid, err := lookupIDs("nobody")
	if err != nil && v.Unavailable == "" {
		v.Unavailable = "unavailable: " + err.Error()
	}
	v.Prepare = func(int) error {
		if err := b.freshDir(dir, "mail", "state"); err != nil {
			return err
		}
		if err := traversable(b.o.work, dir); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(mail, "INBOX"), nil, 0o600); err != nil {
			return err
		}
		err := writeConfig(filepath.Join(state, "getmailrc"), getmailPOP3Config(b.endpoint(port, popUser), filepath.Join(mail, "INBOX")))
		if err != nil {
			return err
		}
		return chownTree(dir, uid, gid)
	}
	v.Command = func(int) *exec.Cmd {
		cmd := exec.Command("getmail", "--getmaildir", state, "--rcfile", filepath.Join(state, "getmailrc"), "--quiet")
		cmd.Env = append(os.Environ(), "HOME="+state)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}
	v.Check = func(int, string) error { return expectCount("mbox", mail, want()) }
	return v
}

// traversable opens every directory from base down to dir for others
// (o+x), so an unprivileged peer can reach its own directory.
func traversable(base, dir string) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not below %s", dir, base)
	}
	p := base
	for _, part := range append([]string{""}, strings.Split(rel, string(filepath.Separator))...) {
		p = filepath.Join(p, part)
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := os.Chmod(p, info.Mode().Perm()|0o011); err != nil {
			return err
		}
	}
	return nil
}

func lookupIDs(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func (b *bench) offlineIMAPFetch(name string, port int, dir string, want func() int) *variant {
	cfg := filepath.Join(dir, "offlineimaprc")
	v := &variant{Name: name, Kind: kindPeer, Unavailable: b.peerMissing("offlineimap"),
		Note: "OfflineIMAP: fsync on (its default), one connection; at most 3 runs (about 45 s each)", MaxReps: 3}
	v.Prepare = func(int) error {
		if err := b.freshDir(dir, "mail", "meta"); err != nil {
			return err
		}
		return writeConfig(cfg, offlineIMAPConfig(b.endpoint(port, accountUser), dir))
	}
	v.Command = func(int) *exec.Cmd { return exec.Command("offlineimap", "-c", cfg, "-o", "-u", "quiet") }
	v.Check = func(int, string) error { return expectCount("maildir", filepath.Join(dir, "mail"), want()) }
	return v
}

// rawVariant runs the bench's own raw client (raw-imap or raw-pop3) as a
// child, writing nothing ("none") or a maildir/mbox tree into dir.
func (b *bench) rawVariant(name, which, addr, account, sink, dir string, want func() int) *variant {
	v := &variant{Name: name, Kind: kindRaw}
	spec := "none"
	if sink != "none" {
		spec = sink + ":" + dir
		v.Prepare = func(int) error { return b.trash.discard(dir) }
	}
	v.Command = func(int) *exec.Cmd { return b.rawCommand(which, addr, account, spec) }
	v.Check = func(_ int, out string) error {
		if err := expectRawOutput(out, want()); err != nil {
			return err
		}
		if sink != "none" {
			format, _, _ := strings.Cut(sink, "+")
			return expectCount(format, dir, want())
		}
		return nil
	}
	return v
}
