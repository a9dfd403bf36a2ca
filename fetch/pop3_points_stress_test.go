//go:build stress

package fetch

// popKillPoints under `-tags stress`: see pop3_points_test.go.
const popKillPoints = 120
