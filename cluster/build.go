package cluster

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"sync"
)

// fingerprint names the build of this program: a hash of the Go build ID
// that the linker writes into the executable (or, failing that, of the
// executable's bytes). Every task carries it in its subject and only
// hosts of the same build take it, so a host never runs a function of
// another program that has the same name, or another version of a
// changed function, with arguments encoded for another: it answers
// exactly or not at all. Two builds of the same source give the same
// fingerprint; any change to the program or its dependencies gives a new
// one (a rolling upgrade: old hosts serve old clients, new hosts new
// ones). The build ID covers the argument and result types of every
// registered function, which are part of the program.
var fingerprint = sync.OnceValue(func() string {
	if testBuild != "" {
		return testBuild
	}
	h := sha256.New()
	exe, err := os.Executable()
	if err == nil {
		if f, err := elf.Open(exe); err == nil {
			if sec := f.Section(".note.go.buildid"); sec != nil {
				if b, err := sec.Data(); err == nil && len(b) > 16 {
					h.Write(b)
					f.Close()
					return hex.EncodeToString(h.Sum(nil)[:8])
				}
			}
			f.Close()
		}
		if f, err := os.Open(exe); err == nil {
			io.Copy(h, f)
			f.Close()
			return hex.EncodeToString(h.Sum(nil)[:8])
		}
	}
	// No executable to read: the process id at least keeps other
	// programs' tasks away (but no other host serves this one's).
	h.Write([]byte(exe))
	return hex.EncodeToString(h.Sum(nil)[:8])
})

// testBuild, set by tests before the first fingerprint, stands for
// another build of the program.
var testBuild string
