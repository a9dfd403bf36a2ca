//go:build !stress

package archive

// stressTest selects the long variants of the crash tests (-tags stress).
const stressTest = false
