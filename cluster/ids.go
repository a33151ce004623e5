package cluster

import (
	"time"

	"crypto/rand"
	"encoding/hex"
	"github.com/nats-io/nats.go"
)

// newID is a random name for a client or a host: the key of its subjects
// and of its reports.
func newID() string {
	var b [9]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newSecret is a task's secret (see resultMAC).
func newSecret() []byte {
	b := make([]byte, secretLen)
	rand.Read(b)
	return b
}

// flush sends what the connection buffers, if it is up, waiting at most a
// second: shutting down must not hang on a server that is gone.
func flush(nc *nats.Conn) {
	if nc.IsConnected() {
		nc.FlushTimeout(time.Second)
	}
}
