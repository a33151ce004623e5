// Package wire moves messages between processes: it frames byte payloads
// the way Python's multiprocessing.connection does, so Go and Python peers
// can share a pipe or socket, and it encodes values of a statically known
// Go type into self-contained payloads.
//
// The framing (frame.go) is a stable, documented wire format because a
// Python process may sit on the other end. The codec (codec.go) is not: it
// assumes both ends run the same Go binary on the same machine, which lets
// it copy pointer-free memory as is instead of serialising it field by
// field.
package wire
