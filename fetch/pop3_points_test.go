//go:build !stress

package fetch

// popKillPoints is how many seeded kill points each POP3 kill test tries
// per archive format; `-tags stress` (make test-stress) tries more.
const popKillPoints = 24
