package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

var versionCommand = command{
	name:    "version",
	summary: "print the module version and the Go version (also: multiproc -version)",
	run:     runVersion,
}

const versionUsage = `usage: multiproc version

Print the version of the multiproc module this command was built from
(from the build information: a release tag, a pseudo-version, or
"(devel)" for a build in a checkout of the repository, with its VCS
revision when the build recorded one) and the Go version that built it.
'multiproc -version' and 'multiproc --version' do the same.
`

func runVersion(args []string) int {
	fs := newFlags("version", versionUsage, os.Stdout, os.Stderr)
	pos, code := fs.parse(args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return fs.usageError("unexpected argument %q", pos[0])
	}
	fmt.Println(versionLine())
	return exitOK
}

// versionLine is "multiproc VERSION (REVISION) GOVERSION OS/ARCH".
func versionLine() string {
	version, rev := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		if version == "" {
			version = "(devel)"
		}
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified {
			rev += "+dirty"
		}
	}
	s := "multiproc " + version
	if rev != "" {
		s += " (" + rev + ")"
	}
	return s + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
