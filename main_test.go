package multiproc_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/multiproc-go/multiproc"
)

func TestMain(m *testing.M) {
	if os.Getenv("MULTIPROC_TEST_NOMAIN") == "1" {
		// A program that forgot multiproc.Main: try to start a child.
		err := double.Process(1).Start()
		fmt.Println("start error:", err)
		os.Exit(3)
	}
	if os.Getenv("MULTIPROC_TEST_DUPREG") == "1" {
		// A name registered twice must panic at initialisation, naming it.
		multiproc.Register("test.double", func(ctx context.Context, x int) (int, error) { return x, nil })
	}
	multiproc.Main()
	if os.Getenv("MULTIPROC_TEST_SIGINT") == "1" {
		os.Exit(sigintHelper())
	}
	os.Exit(m.Run())
}
