//go:build linux && (amd64 || arm64)

package shmmap

import "testing"

func BenchmarkLoad(b *testing.B) {
	m, err := Create()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.Store([]byte("k"), []byte("12345678"))
	var buf []byte
	for b.Loop() {
		buf, _, _ = m.Load(buf[:0], []byte("k"))
	}
}

func BenchmarkUpdate(b *testing.B) {
	m, err := Create()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	v := []byte("12345678")
	for b.Loop() {
		m.Update([]byte("k"), func(old []byte, ok bool) ([]byte, error) { return v, nil })
	}
}
