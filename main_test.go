//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
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
	if os.Getenv("MULTIPROC_ROLE") == "child" {
		// A child that ends before it reaches Main (TestChildKilledDuringHandshake...).
		switch os.Getenv("MULTIPROC_TEST_EARLY") {
		case "kill":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case "stop":
			syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		case "exit":
			os.Exit(4)
		}
	}
	multiproc.Main()
	if os.Getenv("MULTIPROC_TEST_FDLIMIT") == "1" {
		os.Exit(fdLimitHelper())
	}
	if os.Getenv("MULTIPROC_TEST_NOSPARES") == "1" {
		// A program that turns spares off in main, after Main.
		multiproc.SpareProcesses = false
		in, err := procInfo.Call(context.Background(), 0)
		fmt.Println("child SpareProcesses:", in.Spares, err)
		os.Exit(0)
	}
	if os.Getenv("MULTIPROC_TEST_SIGINT") == "1" {
		os.Exit(sigintHelper())
	}
	os.Exit(m.Run())
}
