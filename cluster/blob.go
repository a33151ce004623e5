package cluster

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Payloads beyond what one message may carry (the server's max payload,
// less room for headers) travel through a JetStream Object Store bucket,
// "<Name>_blobs": a task's encoded arguments as the object "<key>", its
// encoded results as "<key>.r"; the task or result message then carries
// only the header hdrBlob. Each blob is sealed with AES-GCM under the
// task's secret (nonce 0 for the arguments, 1 for the results), so a
// member that reads or overwrites the bucket learns nothing and cannot
// forge one. The caller deletes both objects when its call ends (result,
// error, cancel, Close); the bucket's TTL bounds what a client that died
// leaves behind.

// blobTTL is how long a blob is kept at most.
const blobTTL = 24 * time.Hour

// blobTimeout bounds one put or get of a payload.
const blobTimeout = 5 * time.Minute

// blobHeadroom is what a message keeps free for its headers: a payload
// above max payload less this travels as a blob.
const blobHeadroom = 64 << 10

func bucketName(s subjects) string { return s.name + "_blobs" }

func blobConfig(s subjects, storage jetstream.StorageType) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      bucketName(s),
		Description: "multiproc cluster payloads beyond the max payload",
		TTL:         blobTTL,
		Storage:     storage,
	}
}

// blobPermissions are what a client or host needs on the bucket: put,
// get (an ordered consumer with flow control), delete.
func blobPermissions(s subjects) []string {
	b := bucketName(s)
	return []string{
		"$O." + b + ".>",
		"$JS.API.STREAM.INFO.OBJ_" + b,
		"$JS.API.STREAM.PURGE.OBJ_" + b,
		"$JS.API.DIRECT.GET.OBJ_" + b + ".>",
		"$JS.API.CONSUMER.CREATE.OBJ_" + b,
		"$JS.API.CONSUMER.CREATE.OBJ_" + b + ".>",
		"$JS.API.CONSUMER.DELETE.OBJ_" + b + ".>",
		"$JS.FC.OBJ_" + b + ".>",
	}
}

// blobs is a connection's handle on the bucket, bound at first use.
type blobs struct {
	js        jetstream.JetStream
	s         subjects
	canCreate bool                  // create it if missing (a client of a server of its own)
	storage   jetstream.StorageType // if so, with this storage
	mu        sync.Mutex
	obs       jetstream.ObjectStore
}

func (b *blobs) store(ctx context.Context) (jetstream.ObjectStore, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.obs != nil {
		return b.obs, nil
	}
	obs, err := b.js.ObjectStore(ctx, bucketName(b.s))
	if errors.Is(err, jetstream.ErrBucketNotFound) && b.canCreate {
		obs, err = b.js.CreateObjectStore(ctx, blobConfig(b.s, b.storage))
	}
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: the payload store %q: %w", bucketName(b.s), err)
	}
	b.obs = obs
	return obs, nil
}

// put seals data under secret (nonce n) and stores it as name.
func (b *blobs) put(ctx context.Context, name string, secret []byte, n byte, data []byte, maxPayload int64) error {
	obs, err := b.store(ctx)
	if err != nil {
		return err
	}
	sealed, err := seal(secret, n, data)
	if err != nil {
		return err
	}
	chunk := uint32(min(max(maxPayload-blobHeadroom, 64<<10), 1<<20))
	_, err = obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, bytes.NewReader(sealed))
	if err != nil {
		return fmt.Errorf("multiproc: cluster: storing a %d-byte payload: %w", len(data), err)
	}
	return nil
}

// get reads name and opens it under secret (nonce n); at most limit
// bytes are read.
func (b *blobs) get(ctx context.Context, name string, secret []byte, n byte, limit uint64) ([]byte, error) {
	obs, err := b.store(ctx)
	if err != nil {
		return nil, err
	}
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: reading a payload: %w", err)
	}
	if info.Size > limit {
		return nil, fmt.Errorf("multiproc: cluster: a payload of %d bytes, more than the %d announced", info.Size, limit)
	}
	sealed, err := obs.GetBytes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: reading a payload: %w", err)
	}
	return unseal(secret, n, sealed)
}

// remove deletes names, in the background, within a few seconds.
func (b *blobs) remove(names ...string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		obs, err := b.store(ctx)
		if err != nil {
			return
		}
		for _, n := range names {
			obs.Delete(ctx, n)
		}
	}()
}

func gcm(secret []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// seal and unseal: AES-GCM under a task's secret, which is used for two
// messages only, with nonces 0 and 1.
func seal(secret []byte, n byte, data []byte) ([]byte, error) {
	g, err := gcm(secret)
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	nonce[11] = n
	return g.Seal(nil, nonce[:], data, nil), nil
}

func unseal(secret []byte, n byte, sealed []byte) ([]byte, error) {
	g, err := gcm(secret)
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	nonce[11] = n
	data, err := g.Open(sealed[:0], nonce[:], sealed, nil)
	if err != nil {
		return nil, errors.New("multiproc: cluster: a payload that does not open under its task's secret")
	}
	return data, nil
}
