//go:build linux && (amd64 || arm64)

package wire

import "testing"

// numbers holds every width of number the general encoding codes one by
// one (the string keeps it from being copied as plain memory).
type numbers struct {
	A int16
	B int32
	C int64
	D uint16
	E uint32
	F uint64
	G int
	H float32
	I float64
	J complex64
	K complex128
	S string
}

func BenchmarkCodecNumbers(b *testing.B) {
	benchCodec(b, numbers{-300, 70000, -1 << 40, 300, 70000, 1 << 40, 12345, 1.5, 2.5, 3 + 4i, 5 + 6i, ""})
}
