package bench

import (
	"os"
	"testing"

	"github.com/multiproc-go/multiproc"
)

func TestMain(m *testing.M) {
	multiproc.Main()
	os.Exit(m.Run())
}
