//go:build linux && (amd64 || arm64)

package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// DefaultMaxFrame is the payload limit (1 GiB) that ReadFrame and
// ReadFrameInto apply when the caller passes a max of zero or less.
// Python sets no limit at all, but a garbled or hostile length prefix must
// not make a reader wait for, and allocate, gigabytes; callers that expect
// bigger messages pass their own limit.
const DefaultMaxFrame = 1 << 30

// ErrFrameTooLarge is matched (with errors.Is) by the error ReadFrame
// returns when a header announces more than the caller's limit. The payload
// is left unread, so the stream is out of step and should be closed, as
// Python does after "bad message length".
var ErrFrameTooLarge = errors.New("message larger than the limit")

// ErrBadFrame is matched (with errors.Is) by the error ReadFrame returns for
// a length prefix that no correct sender writes: a negative short header
// other than -1, or a long-form length with its top bit set.
var ErrBadFrame = errors.New("malformed message header")

const (
	// longFormAt is the first payload size sent with the long header; int32
	// cannot carry more, and -1 (0xFFFFFFFF) marks the long form.
	longFormAt = math.MaxInt32
	// smallFrame is Python's threshold: up to it, header and payload go out
	// in one write so Nagle's algorithm cannot delay a lone header.
	smallFrame = 16 << 10
	// maxHeader is the size of the long-form header.
	maxHeader = 12
	// eagerAlloc is the payload size up to which ReadFrame trusts the length
	// prefix and allocates the whole buffer before reading.
	eagerAlloc = 1 << 20
	// maxGrowStep caps how much a large payload buffer grows per step, so
	// memory follows the bytes that actually arrive rather than the claim.
	maxGrowStep = 64 << 20
)

// truncatedFrame reports end of file inside a message with Python's wording
// while still matching io.ErrUnexpectedEOF for callers that test for it.
type truncatedFrame struct{}

func (truncatedFrame) Error() string { return "got end of file during message" }
func (truncatedFrame) Unwrap() error { return io.ErrUnexpectedEOF }

var errTruncatedFrame error = truncatedFrame{}

// AppendHeader appends to dst the length prefix for an n-byte payload: a
// big-endian int32, or for n >= 0x7FFFFFFF the int32 -1 followed by a
// big-endian uint64. It panics if n is negative, which is a caller bug.
func AppendHeader(dst []byte, n int) []byte {
	if n < 0 {
		panic("multiproc: negative frame length")
	}
	if uint64(n) < longFormAt {
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	dst = append(dst, 0xFF, 0xFF, 0xFF, 0xFF)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// headerPool holds buffers big enough for a header plus a small payload, so
// WriteFrame neither allocates nor issues two syscalls for small messages.
var headerPool = sync.Pool{New: func() any {
	b := make([]byte, 0, maxHeader+smallFrame)
	return &b
}}

// WriteFrame writes payload as one message. Payloads up to 16 KiB go out
// in a single Write of header and payload together (one syscall, and no
// Nagle delay on TCP); larger ones are written as header then payload to
// avoid copying them, exactly as Python does. Concurrent WriteFrame calls
// on one writer must be serialised by the caller. Errors from w are
// returned unchanged.
func WriteFrame(w io.Writer, payload []byte) error {
	bp := headerPool.Get().(*[]byte)
	defer headerPool.Put(bp)
	b := AppendHeader((*bp)[:0], len(payload))
	if len(payload) <= smallFrame {
		b = append(b, payload...)
		return writeAll(w, b)
	}
	if err := writeAll(w, b); err != nil {
		return err
	}
	return writeAll(w, payload)
}

// writeAll guards against writers that break the io.Writer contract by
// reporting a short write without an error.
func writeAll(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// ReadFrame reads one message and returns its payload in a new buffer.
// It is ReadFrameInto with no buffer to reuse; see there for max and the
// errors.
func ReadFrame(r io.Reader, max int64) ([]byte, error) {
	return ReadFrameInto(r, max, nil)
}

// readers lends ReadFrameInto a FrameReader, which would otherwise be
// allocated per call (its header buffer escapes through io.Reader).
var readers = sync.Pool{New: func() any { return new(FrameReader) }}

// ReadFrameInto reads one message, reusing buf's capacity when the payload
// fits, and returns the payload. The contents of buf are overwritten. A
// max of zero or less means DefaultMaxFrame. It accepts the long header at
// any size, as Python does.
//
// Errors: end of file before the first header byte is exactly io.EOF (the
// peer closed between messages); end of file anywhere later matches
// io.ErrUnexpectedEOF; a length above max matches ErrFrameTooLarge and is
// reported before anything is allocated or read for the payload; an
// impossible header matches ErrBadFrame; other errors come from r
// unchanged. After any error other than io.EOF the stream position is
// unknown and the connection should be closed (a FrameReader can resume
// instead). On error the result is buf[:0], so a caller looping with
// buf = ReadFrameInto(r, max, buf) keeps its buffer.
func ReadFrameInto(r io.Reader, max int64, buf []byte) ([]byte, error) {
	fr := readers.Get().(*FrameReader)
	p, err := fr.Next(r, max, buf)
	fr.Reset()
	readers.Put(fr)
	if err != nil {
		return buf[:0], err
	}
	return p, nil
}

// FrameReader reads messages one after another from a stream, keeping
// what it has read of a message when a read fails, so that a read
// interrupted on purpose (a deadline, a cancelled context) can resume
// where it stopped and the stream stays in step. The zero value is ready
// to use. It is not safe for concurrent use.
type FrameReader struct {
	hdr  [maxHeader]byte
	nhdr int    // header bytes read so far
	buf  []byte // the payload, allocated so far (len) and read so far (got)
	got  int
	size int // the payload's length, once the header is complete
}

// Partial reports whether part of a message has been read: the next Next
// continues it.
func (fr *FrameReader) Partial() bool { return fr.nhdr > 0 }

// Reset forgets a partly read message.
func (fr *FrameReader) Reset() {
	*fr = FrameReader{}
}

// Unshare moves a partly read message's payload into a buffer of the
// reader's own, so that a buffer the caller lent to Next is not written
// by a later call that resumes the message.
func (fr *FrameReader) Unshare() {
	if fr.buf != nil && cap(fr.buf) > 0 {
		fr.buf = append(make([]byte, 0, len(fr.buf)), fr.buf...)
	}
}

// Next reads the rest of the message begun by an earlier call that
// failed, or a new one, and returns its payload. The payload goes into
// buf when it fits and the message is new (a resumed one goes on in the
// buffer it began in); otherwise a new buffer is allocated, all at once
// only up to 1 MiB and then growing as data arrives, so a length prefix
// that claims a gigabyte costs memory in proportion to what is sent. A
// limit of zero or less means DefaultMaxFrame.
//
// Errors are those of ReadFrameInto. After any error the bytes read so
// far are kept: calling Next again resumes the message, which is what a
// caller wants after an error of its own making (a read deadline); after
// a malformed or oversized header, Next returns the same error again. An
// error from r with part of a message read never loses that part.
func (fr *FrameReader) Next(r io.Reader, limit int64, buf []byte) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxFrame
	}
	if fr.nhdr < 4 {
		began := fr.nhdr > 0
		n, err := io.ReadFull(r, fr.hdr[fr.nhdr:4])
		fr.nhdr += n
		if err != nil {
			if err == io.EOF && !began {
				return nil, io.EOF // between messages
			}
			return nil, eofIsTruncation(err)
		}
	}
	size := int64(int32(binary.BigEndian.Uint32(fr.hdr[:4])))
	switch {
	case size == -1:
		if fr.nhdr < maxHeader {
			n, err := io.ReadFull(r, fr.hdr[fr.nhdr:maxHeader])
			fr.nhdr += n
			if err != nil {
				return nil, eofIsTruncation(err)
			}
		}
		long := binary.BigEndian.Uint64(fr.hdr[4:maxHeader])
		if long > math.MaxInt64 {
			return nil, fmt.Errorf("%w: long-form length %#x has the top bit set", ErrBadFrame, long)
		}
		size = int64(long)
	case size < 0:
		// Python would read this as an empty message; a correct sender never
		// writes it, so it means the stream is garbled or out of step.
		return nil, fmt.Errorf("%w: negative length %d", ErrBadFrame, size)
	}
	if size > limit || uint64(size) > math.MaxInt {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, limit)
	}
	if fr.buf == nil {
		fr.size = int(size)
		switch {
		case fr.size == 0 && buf == nil:
			fr.buf = []byte{}
		case fr.size <= cap(buf):
			fr.buf = buf[:fr.size]
		default:
			fr.buf = make([]byte, min(fr.size, max(eagerAlloc, cap(buf))))
		}
	}
	for {
		m, err := io.ReadFull(r, fr.buf[fr.got:])
		fr.got += m
		if err != nil {
			return nil, eofIsTruncation(err)
		}
		if fr.got == fr.size {
			p := fr.buf
			fr.Reset()
			return p, nil
		}
		// The sender has sent this much: grow by as much again, at most
		// maxGrowStep at a time.
		grown := make([]byte, fr.got+min(fr.got, maxGrowStep, fr.size-fr.got))
		copy(grown, fr.buf)
		fr.buf = grown
	}
}

// eofIsTruncation maps end of file met after the first header byte to the
// unexpected-EOF error, leaving other reader errors alone.
func eofIsTruncation(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncatedFrame
	}
	return err
}
