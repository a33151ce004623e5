//go:build linux && (amd64 || arm64)

package multiproc

// noCopy makes go vet's copylocks check report a copy of a type that embeds it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
