package multiproc_test

import (
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
	multiproc.Main()
	if os.Getenv("MULTIPROC_TEST_SIGINT") == "1" {
		os.Exit(sigintHelper())
	}
	os.Exit(m.Run())
}
