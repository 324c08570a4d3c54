package conn

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// v3Codec writes the bytes gRPC's proto codec writes and reads what it
// reads, whole or in pieces.
func TestV3CodecMatchesTheProtoCodec(t *testing.T) {
	proto := encoding.GetCodecV2("proto")
	c := v3Codec{proto: proto}
	var ops []*pb.RequestOp
	var cmps []*pb.Compare
	for i := 0; i < 128; i++ {
		k := []byte("/rok/gw/objects/bucket-0001/d1/e1/doc-" + strings.Repeat("x", i%7))
		cmps = append(cmps, &pb.Compare{Key: k, Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0}})
		ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: k, Value: bytes.Repeat([]byte{byte(i)}, 500), Lease: int64(i % 3)}}})
	}
	req := &pb.TxnRequest{Compare: cmps, Success: ops}
	got, err := c.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Materialize(), want.Materialize()) {
		t.Fatal("v3Codec and the proto codec marshal a transaction differently")
	}

	resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: 42}, WatchId: 7}
	for i := 0; i < 50; i++ {
		resp.Events = append(resp.Events, &mvccpb.Event{Kv: &mvccpb.KeyValue{
			Key: []byte{'k', byte(i)}, Value: bytes.Repeat([]byte("v"), 300), CreateRevision: int64(i), ModRevision: int64(i), Version: 1}})
	}
	wire, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	flat := wire.Materialize()
	for _, pieces := range []int{1, 3} {
		var data mem.BufferSlice
		for i := 0; i < pieces; i++ {
			data = append(data, mem.SliceBuffer(flat[i*len(flat)/pieces:(i+1)*len(flat)/pieces]))
		}
		var a, b pb.WatchResponse
		a.Fragment = true // left over from before: decoding starts afresh
		if err := c.Unmarshal(data, &a); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(data, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&a, &b) || a.Fragment {
			t.Fatalf("%d pieces: v3Codec read %v, the proto codec %v", pieces, a.String(), b.String())
		}
	}
}

func TestDirtyPoolSizes(t *testing.T) {
	p := &dirtyPool{}
	for _, size := range []int{1, 4 << 10, 4<<10 + 1, 77 << 10, 1 << 20, 4 << 20, 4<<20 + 1, 9 << 20} {
		b := p.Get(size)
		if len(*b) != size || cap(*b) < size {
			t.Fatalf("Get(%d): len %d cap %d", size, len(*b), cap(*b))
		}
		p.Put(b)
		if again := p.Get(size); len(*again) != size {
			t.Fatalf("Get(%d) after Put: len %d", size, len(*again))
		}
	}
}
