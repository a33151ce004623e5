package cluster

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// answer publishes a task's result to its caller, with the proof that
// the task was delivered here (resultMAC).
func (h *host) answer(reply, key, fn string, secret, b []byte) {
	out := nats.NewMsg(reply)
	out.Header.Set(hdrID, key)
	out.Header.Set(hdrHost, h.name)
	out.Data = b
	if int64(len(b)) > h.nc.MaxPayload()-blobHeadroom {
		ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
		err := h.blobs.put(ctx, key+".r", secret, 1, b, h.nc.MaxPayload())
		cancel()
		if err == nil {
			out.Header.Set(hdrBlob, strconv.Itoa(len(b)))
			out.Data = nil
		} else {
			out.Data = append([]byte{resFailed}, fmt.Sprintf("multiproc: the result of %s (%d bytes) could not be stored: %v", fn, len(b), err)...)
		}
	}
	out.Header.Set(hdrMAC, resultMAC(secret, key, out.Data))
	h.nc.PublishMsg(out)
}
