// Command own_class is the lesson's "your own Process class": a Runner
// struct whose Run method is the child's body. Two of them copy the two
// halves of a file into a destination file, each process its own half.
//
//	go run ./examples/own_class [SRC DST]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/multiproc-go/multiproc"
)

// HalfCopier copies bytes [Offset, Offset+Length) of Src to the same range
// of Dst. Its exported fields travel to the child.
type HalfCopier struct {
	Src, Dst       string
	Offset, Length int64
}

// Run is the body of the child process.
func (h *HalfCopier) Run(ctx context.Context) error {
	src, err := os.Open(h.Src)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(h.Dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	r := io.NewSectionReader(src, h.Offset, h.Length)
	w := io.NewOffsetWriter(dst, h.Offset)
	n, err := io.Copy(w, r)
	fmt.Printf("  pid %d copied %d bytes at offset %d\n", os.Getpid(), n, h.Offset)
	return err
}

func init() { multiproc.RegisterRunner("examples.HalfCopier", &HalfCopier{}) }

func main() {
	multiproc.Main()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "own_class:", err)
		os.Exit(1)
	}
}

func run() error {
	src, dst := "", ""
	if len(os.Args) == 3 {
		src, dst = os.Args[1], os.Args[2]
	} else {
		dir, err := os.MkdirTemp("", "own_class")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		src, dst = filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		data := make([]byte, 3<<20+17)
		rand.Read(data)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return err
		}
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	size := st.Size()
	if err := os.WriteFile(dst, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(dst, size); err != nil {
		return err
	}
	half := size / 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps := []*multiproc.Process{
		multiproc.NewProcess(&HalfCopier{Src: src, Dst: dst, Offset: 0, Length: half}),
		multiproc.NewProcess(&HalfCopier{Src: src, Dst: dst, Offset: half, Length: size - half}),
	}
	for _, p := range ps {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return err
		}
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	fmt.Printf("copied %d bytes with 2 processes; identical: %v\n", size, bytes.Equal(a, b))
	if !bytes.Equal(a, b) {
		return fmt.Errorf("copy differs")
	}
	return nil
}
