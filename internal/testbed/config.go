package testbed

import (
	"fmt"
	"path/filepath"
	"strings"
)

// config renders the complete dovecot.conf of the server. Nothing from the
// system configuration is included, so the result does not depend on what
// the machine's /etc/dovecot says.
func (s *Server) config() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	dir := s.Dir

	w("# Private Dovecot instance for one test; generated, do not edit.")
	w("instance_name = %s", s.instance)
	w("base_dir = %s", filepath.Join(dir, "run"))
	w("state_dir = %s", filepath.Join(dir, "state"))
	w("log_path = %s", s.LogFile)
	w("info_log_path = %s", s.LogFile)
	w("debug_log_path = %s", s.LogFile)
	w("verbose_proctitle = yes")
	w("")
	// Only IMAP and POP3: no LMTP, submission or other listeners that
	// could collide with the system or with other test servers.
	w("protocols = imap pop3")
	w("listen = %s", s.Host)
	w("")
	w("ssl = yes")
	w("ssl_cert = <%s", filepath.Join(dir, "cert.pem"))
	w("ssl_key = <%s", filepath.Join(dir, "key.pem"))
	w("ssl_min_protocol = TLSv1.2")
	w("")
	w("auth_mechanisms = plain login")
	w("disable_plaintext_auth = no")
	w("auth_verbose = yes")
	// Failed logins are still answered on Dovecot's 0.5 s failure timer,
	// but not after the 2 s default delay.
	w("auth_failure_delay = 0")
	w("auth_cache_size = 0")
	// One passwd-file per user: Dovecot re-checks a passwd-file at most once
	// per second, so a user appended to a shared file right after another
	// login would stay unknown for up to a second. A new file is read on
	// its first lookup, and a missing one means "unknown user".
	w("passdb {")
	w("  driver = passwd-file")
	w("  args = scheme=PLAIN username_format=%%u %s/%%u", s.passwdDir)
	w("}")
	w("userdb {")
	w("  driver = passwd-file")
	w("  args = username_format=%%u %s/%%u", s.passwdDir)
	w("}")
	w("")
	w("first_valid_uid = %d", s.vmail.uid)
	w("last_valid_uid = %d", s.vmail.uid)
	w("first_valid_gid = %d", s.vmail.gid)
	w("last_valid_gid = %d", s.vmail.gid)
	w("mail_location = maildir:%s/%%u", s.MailDir)
	w("mail_max_userip_connections = 100")
	w("")
	w("namespace inbox {")
	w("  inbox = yes")
	w("  separator = /")
	w("  prefix =")
	auto := "subscribe"
	if s.opts.NoAutoCreate {
		auto = "no"
	}
	for _, f := range s.specialFolders() {
		w("  mailbox %q {", f.name)
		w("    special_use = %s", f.use)
		w("    auto = %s", auto)
		w("  }")
	}
	w("}")
	w("")
	// Stable UIDLs built from UID and UIDVALIDITY; RETR must not set \Seen
	// so that POP3 tests do not change what IMAP tests see.
	w("pop3_uidl_format = %%08Xu%%08Xv")
	w("pop3_no_flag_updates = yes")
	w("")
	w("service imap-login {")
	w("  inet_listener imap {")
	w("    port = %d", s.IMAPPort)
	w("  }")
	w("  inet_listener imaps {")
	w("    port = %d", s.IMAPSPort)
	w("    ssl = yes")
	w("  }")
	w("}")
	w("service pop3-login {")
	w("  inet_listener pop3 {")
	w("    port = %d", s.POP3Port)
	w("  }")
	w("  inet_listener pop3s {")
	w("    port = %d", s.POP3SPort)
	w("    ssl = yes")
	w("  }")
	w("}")
	// The auth process remembers failed logins per client IP in anvil and
	// delays every later login from that IP (2, 4, 8 ... s), even
	// successful ones. Tests log in from 127.0.0.1 all the time, so the
	// penalty socket is moved away: the auth process finds no socket at
	// the default path and runs without penalties.
	w("service anvil {")
	w("  unix_listener anvil-auth-penalty {")
	w("    path = anvil-auth-penalty-unused")
	w("  }")
	w("}")
	if s.opts.ExtraConfig != "" {
		w("")
		w("# Options.ExtraConfig")
		w("%s", s.opts.ExtraConfig)
	}
	return b.String()
}

type specialFolder struct{ name, use string }

// specialFolders lists the special-use folders every account offers.
func (s *Server) specialFolders() []specialFolder {
	return []specialFolder{
		{s.SentName, `\Sent`},
		{"Drafts", `\Drafts`},
		{"Trash", `\Trash`},
		{"Junk", `\Junk`},
		{"Archive", `\Archive`},
	}
}
