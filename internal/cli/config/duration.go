package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written the way people write retention
// periods: Go durations ("90m", "36h") plus whole days and weeks ("30d",
// "2w"), optionally followed by a Go duration ("1d12h").
type Duration time.Duration

// ParseDuration parses the Duration syntax.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := s
	// Leading whole days/weeks: digits followed by d or w.
	for {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("duration %q is out of range", s)
		}
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit *= 7
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("duration %q: use a number with a unit, such as 30s, 10m, 36h, 30d or 2w", s)
		}
		total += d
	}
	if total < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return total, nil
}

// FormatDuration writes d in the Duration syntax, using days where exact.
func FormatDuration(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// UnmarshalText implements encoding.TextUnmarshaler (TOML strings).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(FormatDuration(time.Duration(d))), nil
}

// String implements pflag.Value.
func (d *Duration) String() string {
	if d == nil || *d == 0 {
		return "0"
	}
	return FormatDuration(time.Duration(*d))
}

// Set implements pflag.Value, so flags accept "30d" too.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// Type implements pflag.Value.
func (d *Duration) Type() string { return "duration" }
