//go:build stress

package archive

const stressTest = true
