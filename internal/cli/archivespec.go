package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/mailerr"
)

// archiveSpec checks a mailark archive spec (maildir:PATH or mbox:PATH),
// expands a leading ~/ in PATH (a shell does not expand it after
// "maildir:") and makes PATH absolute, so that two spellings of one
// archive are recognised as the same by `mailark run`.
func archiveSpec(spec string) (string, error) {
	format, path, err := archive.ParseSpec(spec)
	if err != nil {
		if errors.Is(err, archive.ErrBadSpec) {
			// The message already says what is wrong; drop the sentinel's text.
			msg := strings.TrimSuffix(err.Error(), ": "+archive.ErrBadSpec.Error())
			return "", mailerr.E(mailerr.ErrUsage, nil, "%s", msg)
		}
		return "", mailerr.E(mailerr.ErrUsage, err, "bad archive %q", spec)
	}
	abs, err := absPath(path)
	if err != nil {
		return "", err
	}
	return string(format) + ":" + abs, nil
}

// readableArchive accepts what restore and ls read: a mailark spec, or the
// path of any mbox file, mbox tree or maildir another program wrote.
func readableArchive(spec string) (string, error) {
	if kind, _, ok := strings.Cut(spec, ":"); ok && (kind == string(archive.Maildir) || kind == string(archive.Mbox)) {
		return archiveSpec(spec)
	}
	if spec == "" {
		return "", mailerr.E(mailerr.ErrUsage, nil, "empty archive path")
	}
	return absPath(spec)
}

func absPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", mailerr.E(mailerr.ErrUsage, err, "cannot expand ~ in %q", p)
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", mailerr.E(mailerr.ErrUsage, err, "bad archive path %q", p)
	}
	return abs, nil
}

// archiveKey is what identifies an archive on disk, for running jobs on
// one archive one after the other.
func archiveKey(spec string) string {
	if _, path, ok := strings.Cut(spec, ":"); ok && !filepath.IsAbs(spec) {
		return filepath.Clean(path)
	}
	return filepath.Clean(spec)
}
