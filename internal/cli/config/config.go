// Package config reads mailark's TOML configuration: any number of
// [[job]] tables, each a fetch, restore or migrate, plus a few settings for
// `mailark run`.
//
// Every problem is an ErrUsage error that starts with FILE:LINE, so a
// sysadmin reading a cron mail knows where to look: unknown keys, values of
// the wrong type, bad durations, a job without a source, an inline password
// in a file others can read.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mailark/mailark/internal/mailerr"
)

// Kind is what a job does.
type Kind string

const (
	KindFetch   Kind = "fetch"   // source → archive
	KindRestore Kind = "restore" // archive → target
	KindMigrate Kind = "migrate" // source → archive → target, then verify
)

// Config is one configuration file.
type Config struct {
	// Path is the file it was read from.
	Path string `toml:"-"`

	// ParallelJobs is how many independent jobs `mailark run` runs at once
	// (--jobs overrides it). 0: the default.
	ParallelJobs int `toml:"parallel_jobs"`
	// LogFile receives a log line per event, appended (--log-file).
	LogFile string `toml:"log_file"`
	// LockWait is how long a job waits for an archive another run holds.
	LockWait Duration `toml:"lock_wait"`
	// Retries is how often a job is retried after a network error.
	Retries *int `toml:"retries"`

	Jobs []Job `toml:"job"`
}

// Job is one [[job]] table.
type Job struct {
	Name string `toml:"name"`
	// Kind is inferred when absent: source+target → migrate, only target →
	// restore, only source → fetch.
	Kind Kind `toml:"kind"`

	Source  string   `toml:"source"`  // imaps://user@host etc. (fetch, migrate)
	Archive string   `toml:"archive"` // maildir:PATH / mbox:PATH (restore: any mbox/maildir path)
	Target  string   `toml:"target"`  // imaps://user@host (restore, migrate)
	Add     []string `toml:"add"`     // migrate: extra local mbox/maildir trees

	// Source credentials (for restore: the target's, unless target_* keys are set).
	PasswordCommand   string `toml:"password_command"`
	PasswordFile      string `toml:"password_file"`
	PasswordEnv       string `toml:"password_env"`
	Password          string `toml:"password"` // only in a file readable by its owner alone
	OAuthTokenCommand string `toml:"oauth_token_command"`

	// Target credentials for restore and migrate.
	TargetPasswordCommand   string `toml:"target_password_command"`
	TargetPasswordFile      string `toml:"target_password_file"`
	TargetPasswordEnv       string `toml:"target_password_env"`
	TargetPassword          string `toml:"target_password"`
	TargetOAuthTokenCommand string `toml:"target_oauth_token_command"`

	Include     []string `toml:"include"`
	Exclude     []string `toml:"exclude"`
	SkipAllMail bool     `toml:"skip_all_mail"`

	// POP3.
	Delete          bool     `toml:"delete"`
	DeleteOlderThan Duration `toml:"delete_older_than"`
	MarkSeen        bool     `toml:"mark_seen"`

	// Restore.
	FolderMap []string `toml:"folder_map"` // "ARCHIVE=TARGET"
	Prefix    string   `toml:"prefix"`

	Connections  int      `toml:"connections"`
	CAFile       string   `toml:"ca_file"`
	TargetCAFile string   `toml:"target_ca_file"`
	Plaintext    bool     `toml:"plaintext"`
	Timeout      Duration `toml:"timeout"`

	// pos locates the job and its keys in the file, for error messages.
	pos jobPos
	// file is the config path, for error messages.
	file string
}

type jobPos struct {
	header int            // line of [[job]]
	keys   map[string]int // key → line
}

// DefaultPath is $XDG_CONFIG_HOME/mailark/config.toml (or the platform's
// equivalent through os.UserConfigDir).
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", mailerr.E(mailerr.ErrUsage, err, "cannot find the configuration directory; pass --config FILE")
	}
	return filepath.Join(dir, "mailark", "config.toml"), nil
}

// maxConfigSize bounds what Load reads: a config file is small; a huge one
// is a mistake (the wrong path) rather than a configuration.
const maxConfigSize = 1 << 20

// Load reads and checks a configuration file.
func Load(path string) (*Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, mailerr.E(mailerr.ErrUsage, nil, "config file %s does not exist; create it (see docs/cron.md) or pass --config FILE", path)
		}
		return nil, mailerr.E(mailerr.ErrUsage, err, "cannot read config file %s", path)
	}
	if !fi.Mode().IsRegular() {
		return nil, mailerr.E(mailerr.ErrUsage, nil, "config file %s is not a regular file", path)
	}
	if fi.Size() > maxConfigSize {
		return nil, mailerr.E(mailerr.ErrUsage, nil, "config file %s is larger than 1 MiB; is it the right file?", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, mailerr.E(mailerr.ErrUsage, err, "cannot read config file %s", path)
	}
	return Parse(path, data, fi.Mode().Perm())
}

// Parse checks a configuration held in memory; path is used in messages,
// perm is the file mode the inline-password rule is checked against.
func Parse(path string, data []byte, perm fs.FileMode) (*Config, error) {
	cfg := &Config{Path: path}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, decodeError(path, err)
	}
	positions, err := jobPositions(data)
	if err != nil {
		return nil, decodeError(path, err)
	}
	if len(positions) != len(cfg.Jobs) {
		// Cannot happen with a document the decoder accepted; be safe.
		return nil, mailerr.E(mailerr.ErrUsage, nil, "%s: cannot locate the [[job]] tables", path)
	}
	for i := range cfg.Jobs {
		cfg.Jobs[i].pos = positions[i]
		cfg.Jobs[i].file = path
	}
	if err := cfg.check(perm); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeError turns go-toml's errors into one line "FILE:LINE:COL: what".
func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		first := strict.Errors[0]
		line, col := first.Position()
		key := strings.Join(first.Key(), ".")
		more := ""
		if n := len(strict.Errors) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more unknown keys)", n)
		}
		return mailerr.E(mailerr.ErrUsage, nil, "%s:%d:%d: unknown key %q%s", path, line, col, key, more)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			msg = fmt.Sprintf("%s: %s", strings.Join(k, "."), msg)
		}
		return mailerr.E(mailerr.ErrUsage, nil, "%s:%d:%d: %s", path, line, col, msg)
	}
	var pe *unstable.ParserError
	if errors.As(err, &pe) {
		return mailerr.E(mailerr.ErrUsage, nil, "%s: %s", path, pe.Message)
	}
	return mailerr.E(mailerr.ErrUsage, err, "%s", path)
}

// jobPositions walks the document once more to learn the line of every
// [[job]] header and of every key inside it, so that checks made after
// decoding (a missing source, a bad URL) can still point at a line.
func jobPositions(data []byte) ([]jobPos, error) {
	var p unstable.Parser
	p.Reset(data)
	var out []jobPos
	inJob := false
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			key, line := firstKey(&p, e)
			inJob = e.Kind == unstable.ArrayTable && key == "job" && keyLen(e) == 1
			if inJob {
				out = append(out, jobPos{header: line, keys: map[string]int{}})
			}
		case unstable.KeyValue:
			if inJob {
				key, line := firstKey(&p, e)
				out[len(out)-1].keys[key] = line
			}
		}
	}
	return out, p.Error()
}

func firstKey(p *unstable.Parser, e *unstable.Node) (string, int) {
	it := e.Key()
	if !it.Next() {
		return "", 0
	}
	n := it.Node()
	return string(n.Data), p.Shape(n.Raw).Start.Line
}

func keyLen(e *unstable.Node) int {
	n := 0
	for it := e.Key(); it.Next(); {
		n++
	}
	return n
}

// Errorf is an ErrUsage error located at key's line in the job (or at the
// job's [[job]] line when the key is absent).
func (j *Job) Errorf(key string, format string, args ...any) error {
	return mailerr.E(mailerr.ErrUsage, nil, "%s: %s", j.Where(key), fmt.Sprintf(format, args...))
}

// Where is "FILE:LINE" of key in the job, or of the job header.
func (j *Job) Where(key string) string {
	line := j.pos.header
	if l, ok := j.pos.keys[key]; ok && key != "" {
		line = l
	}
	return fmt.Sprintf("%s:%d", j.file, line)
}

// Label names the job in messages: its name, or "job N at FILE:LINE".
func (j *Job) Label() string {
	if j.Name != "" {
		return j.Name
	}
	return "job at " + j.Where("")
}

func (c *Config) check(perm fs.FileMode) error {
	if c.ParallelJobs < 0 || c.ParallelJobs > 64 {
		return mailerr.E(mailerr.ErrUsage, nil, "%s: parallel_jobs = %d: use 1 to 64", c.Path, c.ParallelJobs)
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > 20) {
		return mailerr.E(mailerr.ErrUsage, nil, "%s: retries = %d: use 0 to 20", c.Path, *c.Retries)
	}
	if len(c.Jobs) == 0 {
		return mailerr.E(mailerr.ErrUsage, nil, "%s: no [[job]] table; add one (see docs/cron.md)", c.Path)
	}
	names := map[string]string{}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if err := j.check(perm); err != nil {
			return err
		}
		if j.Name == "" {
			continue
		}
		if prev, dup := names[j.Name]; dup {
			return j.Errorf("name", "job name %q is already used at %s", j.Name, prev)
		}
		names[j.Name] = j.Where("name")
	}
	return nil
}

func (j *Job) check(perm fs.FileMode) error {
	switch k := Kind(strings.ToLower(string(j.Kind))); k {
	case "":
		j.Kind = j.inferKind()
	case KindFetch, KindRestore, KindMigrate:
		j.Kind = k
	default:
		return j.Errorf("kind", "kind %q: use fetch, restore or migrate", string(j.Kind))
	}
	if j.Kind == "" {
		return j.Errorf("", "job has neither source nor target; set source (fetch), target (restore) or both (migrate)")
	}
	if j.Archive == "" {
		return j.Errorf("", "job has no archive; set archive = \"maildir:PATH\" or \"mbox:PATH\"")
	}
	switch j.Kind {
	case KindFetch:
		if j.Source == "" {
			return j.Errorf("kind", "a fetch job needs source = \"imaps://USER@HOST\"")
		}
		if j.Target != "" {
			return j.Errorf("target", "a fetch job has no target; remove it or use kind = \"migrate\"")
		}
	case KindRestore:
		if j.Target == "" {
			return j.Errorf("kind", "a restore job needs target = \"imaps://USER@HOST\"")
		}
		if j.Source != "" {
			return j.Errorf("source", "a restore job has no source; remove it or use kind = \"migrate\"")
		}
	case KindMigrate:
		if j.Source == "" || j.Target == "" {
			return j.Errorf("kind", "a migrate job needs both source and target")
		}
	}
	if len(j.Add) > 0 && j.Kind != KindMigrate {
		return j.Errorf("add", "add is for migrate jobs only")
	}
	if j.Connections < 0 || j.Connections > 64 {
		return j.Errorf("connections", "connections = %d: use 1 to 64 (0: the default)", j.Connections)
	}
	if j.DeleteOlderThan > 0 && j.Delete {
		return j.Errorf("delete_older_than", "set either delete = true or delete_older_than, not both")
	}
	for _, m := range j.FolderMap {
		if a, b, ok := strings.Cut(m, "="); !ok || a == "" || b == "" {
			return j.Errorf("folder_map", "folder_map entry %q: write it as \"ARCHIVE_FOLDER=TARGET_FOLDER\"", m)
		}
	}
	if err := j.checkSecrets(perm); err != nil {
		return err
	}
	return nil
}

func (j *Job) inferKind() Kind {
	switch {
	case j.Source != "" && j.Target != "":
		return KindMigrate
	case j.Target != "":
		return KindRestore
	case j.Source != "":
		return KindFetch
	}
	return ""
}

// checkSecrets enforces one secret source per account and the rule that an
// inline password needs a file only its owner can read.
func (j *Job) checkSecrets(perm fs.FileMode) error {
	type secretKeys struct{ command, file, env, inline string }
	groups := []struct {
		keys   secretKeys
		values [4]string
	}{
		{secretKeys{"password_command", "password_file", "password_env", "password"},
			[4]string{j.PasswordCommand, j.PasswordFile, j.PasswordEnv, j.Password}},
		{secretKeys{"target_password_command", "target_password_file", "target_password_env", "target_password"},
			[4]string{j.TargetPasswordCommand, j.TargetPasswordFile, j.TargetPasswordEnv, j.TargetPassword}},
	}
	for _, g := range groups {
		names := []string{g.keys.command, g.keys.file, g.keys.env, g.keys.inline}
		var set []string
		for i, v := range g.values {
			if v != "" {
				set = append(set, names[i])
			}
		}
		if len(set) > 1 {
			return j.Errorf(set[1], "%s and %s both set; choose one", set[0], set[1])
		}
		if g.values[3] != "" && perm&0o077 != 0 {
			return j.Errorf(g.keys.inline, "%s inline is accepted only when the config file is readable by its owner alone (chmod 600 %s; it is %04o); or use %s, %s or %s",
				g.keys.inline, j.file, perm, g.keys.command, g.keys.file, g.keys.env)
		}
	}
	if (j.TargetPasswordCommand != "" || j.TargetPasswordFile != "" || j.TargetPasswordEnv != "" || j.TargetPassword != "" || j.TargetOAuthTokenCommand != "") && j.Kind == KindFetch {
		return j.Errorf("", "target_password_* keys are for restore and migrate jobs")
	}
	return nil
}

// Select returns the jobs named, in config order, or all of them when no
// name is given. An unknown name is a usage error listing the known ones.
func (c *Config) Select(names []string) ([]*Job, error) {
	if len(names) == 0 {
		out := make([]*Job, len(c.Jobs))
		for i := range c.Jobs {
			out[i] = &c.Jobs[i]
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []*Job
	var known []string
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if j.Name != "" {
			known = append(known, j.Name)
		}
		if want[j.Name] {
			out = append(out, j)
			delete(want, j.Name)
		}
	}
	for _, n := range names {
		if want[n] {
			return nil, mailerr.E(mailerr.ErrUsage, nil, "%s has no job named %q (jobs: %s)", c.Path, n, strings.Join(known, ", "))
		}
	}
	return out, nil
}
