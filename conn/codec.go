package conn

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// etcd's v3 messages are gogo-protobuf ones, which gRPC's proto codec
// only reaches through the protobuf API's legacy wrapper: to size a
// request it marshals it whole, then marshals it again into a buffer from
// gRPC's pool, whose size class (1 MiB for a transaction of 128 small
// documents) it clears first. A batched write paid three times its bytes
// before it left; the Gateway move's client spent a tenth of its time
// there. v3Codec sizes and marshals such messages with their own methods,
// once, into a pooled buffer that it does not clear (the message
// overwrites every byte it sends), and decodes them straight from what
// gRPC received; anything else goes to gRPC's codec.
type v3Codec struct{ proto encoding.CodecV2 }

// gogoMessage is what gogo-protobuf generates for each message.
type gogoMessage interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
	Unmarshal([]byte) error
	Reset()
}

func (c v3Codec) Name() string { return c.proto.Name() }

func (c v3Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.proto.Marshal(v)
	}
	size := m.Size()
	buf := marshalBufs.Get(size)
	if n, err := m.MarshalToSizedBuffer(*buf); err != nil || n != size {
		marshalBufs.Put(buf)
		if err == nil {
			err = fmt.Errorf("conn: %T marshalled %d bytes of its %d", v, n, size)
		}
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, marshalBufs)}, nil
}

// marshalBufs holds marshalled requests until gRPC has sent them.
var marshalBufs = &dirtyPool{}

// dirtyPool is a mem.BufferPool whose buffers keep what they held:
// buffers of 4 KiB to 4 MiB by powers of two, larger ones not kept.
type dirtyPool struct{ tiers [11]sync.Pool }

// tier is the index of the smallest tier holding size bytes, or -1.
func (p *dirtyPool) tier(size int) int {
	t := max(bits.Len(uint(size-1))-12, 0)
	if t >= len(p.tiers) {
		return -1
	}
	return t
}

func (p *dirtyPool) Get(size int) *[]byte {
	t := p.tier(size)
	if t < 0 {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size, 4<<10<<t)
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	if t := p.tier(cap(*b)); t >= 0 && cap(*b) == 4<<10<<t {
		p.tiers[t].Put(b)
	}
}

func (c v3Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	// As proto.Unmarshal: the message holds what b holds, nothing from
	// before. gogo copies what it decodes, so b is not kept.
	m.Reset()
	return m.Unmarshal(b)
}

// v3CodecOption makes a v3 client use v3Codec.
func v3CodecOption() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.ForceCodecV2(v3Codec{proto: encoding.GetCodecV2("proto")}))
}
