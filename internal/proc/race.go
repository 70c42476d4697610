//go:build race

package proc

// Race is whether this program was built with -race; a TestBinary is
// built the same way.
const Race = true
